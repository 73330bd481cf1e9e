"""What one replica needs (``resources:``), of a model service or of an agent; pure.

The local backend checks GPUs; a Kubernetes environment requests all of it (memory
is also the container's limit); ``llmfleet costs`` prices a replica by it.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"
MAX_CPUS = 1024
MAX_GPUS = 64
MAX_MEMORY = "64Ti"
_MEMORY_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def memory_bytes(text: str) -> int:
    """``"4Gi"`` -> 4294967296; pure. The pattern is checked by the spec already."""
    number = text.rstrip("KMGTi")
    return int(Decimal(number) * _MEMORY_UNITS[text[len(number) :]])


def _sane_memory(value: str) -> str:
    if memory_bytes(value) > memory_bytes(MAX_MEMORY):
        raise ValueError(f"must be at most {MAX_MEMORY}, got {value!r}")
    return value


class Resources(BaseModel):
    """What one replica of a model service needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float = Field(default=1.0, gt=0, le=MAX_CPUS)
    memory: str = Field(default="1Gi", pattern=MEMORY_PATTERN, description=f"at most {MAX_MEMORY}")
    gpus: int = Field(default=0, ge=0, le=MAX_GPUS)
    gpu_type: str | None = Field(default=None, description="e.g. nvidia-h100; None means any")

    _memory_is_sane = field_validator("memory")(_sane_memory)


class AgentResources(BaseModel):
    """What one replica of an agent needs: a program that calls models, so by default
    a quarter of a CPU and 512Mi, and no GPU (its models have those)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float = Field(default=0.25, gt=0, le=MAX_CPUS)
    memory: str = Field(
        default="512Mi", pattern=MEMORY_PATTERN, description=f"at most {MAX_MEMORY}"
    )

    _memory_is_sane = field_validator("memory")(_sane_memory)
