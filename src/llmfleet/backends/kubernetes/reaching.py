"""Where the CLI reaches a cluster environment's gateway (validate's suites); pure.

A platform team puts its gateway behind an Ingress or a LoadBalancer anyway, so
``backend.gateway_url`` names that address and wins. Without it, a CLI that runs
in a pod (a CI job in the cluster) uses the Service's cluster address, and one
outside uses the API server's service proxy
(``/api/v1/namespaces/NS/services/llmfleet-gateway:http/proxy``) when the API is
plain http - ``kubectl proxy`` holds the credentials then, so the suites' HTTP
client needs none. A kubeconfig that speaks TLS with a token or a client
certificate is not lent to the suites: that would copy credentials into a second
HTTP stack, so the fix is named instead. The service proxy adds the API server's
hop to every request, on both sides of a comparison alike; speed figures that
must match what clients see want ``gateway_url``.
"""

from __future__ import annotations

from llmfleet.backends.kubernetes.names import GATEWAY
from llmfleet.errors import BackendError

PORT_NAME = "http"
"""The gateway Service's port name (``gateway.render_gateway_service``)."""


def cluster_address(namespace: str, port: int) -> str:
    """The gateway Service as pods of the cluster reach it."""
    return f"http://{GATEWAY}.{namespace}.svc:{port}"


def service_proxy(api_server: str, namespace: str) -> str:
    """The gateway Service through the API server's proxy (a base URL: ``/v1/...`` is
    appended to it as to any gateway's)."""
    api = api_server.rstrip("/")
    return f"{api}/api/v1/namespaces/{namespace}/services/{GATEWAY}:{PORT_NAME}/proxy"


def gateway_url_from_here(
    *,
    environment: str,
    namespace: str,
    port: int,
    configured: str | None,
    api_server: str | None,
    in_cluster: bool,
) -> str:
    """The gateway's base URL for this process; see the module doc for the order.

    ``api_server`` is the API's URL this process talks to (None when unknown).
    Raises ``BackendError`` with the fix when no way reaches it."""
    if configured:
        return configured.rstrip("/")
    if in_cluster:
        return cluster_address(namespace, port)
    if api_server and api_server.startswith("http://"):
        return service_proxy(api_server, namespace)
    raise BackendError(
        f"the gateway of environment {environment} (namespace {namespace}) cannot be reached "
        "from this machine: the cluster's API speaks TLS, whose credentials llmfleet does "
        "not lend to the suites",
        hint=f"set environments.{environment}.backend.gateway_url to its Ingress or "
        "LoadBalancer address (or to a `kubectl port-forward -n "
        f"{namespace} svc/{GATEWAY} 8080:http` address), or run `kubectl proxy` and set "
        "LLMFLEET_KUBERNETES_API=http://127.0.0.1:8001",
    )
