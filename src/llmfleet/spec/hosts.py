"""Host names and addresses the spec may bind to, and which of them stay on this machine; pure.

A gateway or metrics host is handed to ``bind()``: it must be an IP address or
an RFC 1123 host name, never free text. Whether a host is loopback decides
whether a gateway without API keys may listen there (``spec.exposure``).
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
MAX_HOST_NAME = 253


def check_host(value: str) -> str:
    """``value`` if it is an IP address or a host name; else ``ValueError`` saying so."""
    if _is_address(value) or _is_host_name(value):
        return value
    raise ValueError(f"must be an IP address or a host name (RFC 1123), got {value!r}")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name other than localhost may resolve to anything
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_host_name(value: str) -> bool:
    """RFC 1123 labels; a last label of digits only is an IPv4 address gone wrong."""
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    return (
        0 < len(name) <= MAX_HOST_NAME
        and all(_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()
    )
