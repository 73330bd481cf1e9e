"""Object names and namespaces; pure.

Kubernetes wants a Service's name to be a DNS-1035 label (a letter first, at
most 63 characters); every name made here is one, so any object kind can use
it. A name that would be longer, or start with a digit, is cut and given a
hash of the whole, so two long names never meet.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from llmfleet.errors import BackendError
from llmfleet.spec.placement import BackendSpec

MAX_LABEL = 63
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_HASH_CHARS = 8
GATEWAY = "llmfleet-gateway"
"""Every gateway object's name (kinds differ, so they may share it)."""
ENGINE_NETWORK_POLICY = "llmfleet-engines"
AGENT_NETWORK_POLICY = "llmfleet-agents"
KEY_FIELD = "api-key"
"""The key of an engine key Secret that holds the key itself."""


def dns_label(*parts: str) -> str:
    """``parts`` joined by '-' as a DNS-1035 label: as is when it is one, else cut + hash."""
    text = "-".join(parts).lower()
    if DNS_1035.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]
    stem = re.sub(r"[^a-z0-9-]+", "-", text)
    if not stem[:1].isalpha():
        stem = f"x-{stem}"
    stem = stem[: MAX_LABEL - _HASH_CHARS - 1].rstrip("-")
    return f"{stem}-{digest}"


def namespace_of(fleet: str, environment: str, backend: BackendSpec) -> str:
    """The spec's namespace, or FLEET-ENVIRONMENT: two environments never share one."""
    return backend.namespace or dns_label(fleet, environment)


def engine_name(service: str) -> str:
    """The Deployment, headless Service and PDB of a service (``kubectl get pods`` shows it)."""
    name = dns_label(service)
    if name == GATEWAY:
        raise BackendError(
            f"service '{service}' would share its Kubernetes name with the gateway",
            hint="rename the service",
        )
    return name


def engine_key_secret(service: str) -> str:
    """The Secret holding the API key the service's engines want (made at apply)."""
    return dns_label(service, "engine-key")


def model_link(service: str, source: str) -> str:
    """The file name, in the model volume, that points at the service's fetched model.

    It keeps the source's suffix: vLLM, for one, tells a GGUF file by its ``.gguf``."""
    suffix = PurePosixPath(source.split(":", 1)[-1]).suffix
    if not re.fullmatch(r"[.][A-Za-z0-9]{1,16}", suffix):
        suffix = ".model"
    return f"{dns_label(service)}{suffix}"
