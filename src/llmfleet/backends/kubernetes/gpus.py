"""GPU scheduling: the device plugin's resource, node affinity and tolerations; pure.

NVIDIA's GPU feature discovery labels each node with ``nvidia.com/gpu.product``,
the product name with spaces as '-' (``NVIDIA-H100-80GB-HBM3``). A spec names
a type as the cost catalogue does (``nvidia-h100``); the table below maps the
common ones onto every product label they cover, and ``backend.gpu_products``
adds or overrides a type. A type found in neither is refused: scheduling on any
GPU instead would be a quiet surprise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmfleet.errors import BackendError
from llmfleet.spec.resources import Resources

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
KNOWN_PRODUCTS: Mapping[str, tuple[str, ...]] = {
    "nvidia-h200": ("NVIDIA-H200", "NVIDIA-H200-NVL"),
    "nvidia-h100": ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"),
    "nvidia-a100": (
        "NVIDIA-A100-SXM4-80GB",
        "NVIDIA-A100-SXM4-40GB",
        "NVIDIA-A100-80GB-PCIe",
        "NVIDIA-A100-PCIE-40GB",
    ),
    "nvidia-l40s": ("NVIDIA-L40S",),
    "nvidia-l4": ("NVIDIA-L4",),
    "nvidia-a10g": ("NVIDIA-A10G",),
    "nvidia-t4": ("Tesla-T4",),
}


def gpu_products(gpu_type: str, overrides: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The product label values of ``gpu_type``; ``BackendError`` with the fix if unknown."""
    found = overrides.get(gpu_type) or KNOWN_PRODUCTS.get(gpu_type)
    if found:
        return found
    raise BackendError(
        f"resources.gpu_type '{gpu_type}' has no known value of the node label {PRODUCT_LABEL}",
        hint=f"add backend.gpu_products: {{{gpu_type}: [VALUE]}} to the environment, with the "
        f"value `kubectl get nodes -L {PRODUCT_LABEL}` shows; known types: "
        f"{', '.join(sorted(KNOWN_PRODUCTS))}",
    )


def gpu_scheduling(
    resources: Resources, overrides: Mapping[str, tuple[str, ...]]
) -> dict[str, Any]:
    """The pod spec keys that put a GPU replica on a node with the right GPU."""
    if resources.gpus == 0:
        return {}
    scheduling: dict[str, Any] = {
        # GPU nodes are usually tainted so that only pods that ask for GPUs land there.
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }
    if resources.gpu_type is not None:
        values = list(gpu_products(resources.gpu_type, overrides))
        term = {"matchExpressions": [{"key": PRODUCT_LABEL, "operator": "In", "values": values}]}
        required = {"nodeSelectorTerms": [term]}
        scheduling["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
        }
    return scheduling
