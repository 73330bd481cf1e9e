"""The same containers as a docker-compose file, for a team on a few Docker hosts; pure.

One compose service per replica-set (``deploy.replicas``), the model fetched by
a one-shot service each engine waits for, engines on an internal network only
the gateway shares, and the gateway's port published. The gateway finds each
engine's containers by its service name (``gateway.dns_discovery``), from the
``services.json`` a cluster's gateway reads, given as a compose config. Engine
keys come from the environment of whoever runs compose (``LLMFLEET_KEY_SERVICE``),
never the file: the engine reads the variable, the gateway the same value as a
compose secret (a file).
"""

from __future__ import annotations

import hashlib
from typing import Any

from llmfleet.backends.kubernetes.context import MODELS_MOUNT, RenderContext
from llmfleet.backends.kubernetes.gateway import CONFIG_DIGEST_ANNOTATION, services_document
from llmfleet.backends.kubernetes.names import model_link
from llmfleet.backends.kubernetes.workloads import FETCH_MODULE, grace_period_s, model_uri
from llmfleet.engines.registry import get_adapter
from llmfleet.errors import BackendError
from llmfleet.observe.process_env import gateway_env

GATEWAY_CONFIG = "/etc/llmfleet/services.json"
SECRETS_DIR = "/run/secrets"
"""Where compose mounts a service's secrets (``secrets:``, each a file)."""


def key_variable(name: str) -> str:
    return "LLMFLEET_KEY_" + name.upper().replace("-", "_")


def render_compose(ctx: RenderContext) -> dict[str, Any]:
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    endpoints: dict[str, tuple[str, int]] = {}
    key_secrets: dict[str, str] = {}
    for name, service in sorted(ctx.environment.services.items()):
        if service.agent is not None:
            raise BackendError(
                f"agents.{name}: a compose file does not run agents yet",
                hint="run the environment's agents on Kubernetes (render kubernetes) or the "
                "local backend, or leave them out of this spec",
            )
        container = get_adapter(service.engine.kind).container(
            service, model_uri=model_uri(name, service), served_name=name
        )
        endpoints[name] = (name, container.port)  # Docker's DNS answers the service's name
        env = dict(container.env)
        if container.api_key_env is not None:
            key_secrets[name] = f"llmfleet-key-{name}"
            env[container.api_key_env] = f"${{{key_variable(name)}:?set it to the engine key}}"
        engine: dict[str, Any] = {
            "image": container.image,
            "command": list(container.args),
            "environment": env,
            "networks": ["engines"],
            "user": "65532:65532",
            "read_only": True,
            "tmpfs": ["/tmp"],  # noqa: S108 - the container's own tmpfs
            "stop_grace_period": f"{grace_period_s(service)}s",
            "deploy": {"replicas": service.replicas},
        }
        link = model_link(name, service.model.source)
        if service.model.scheme != "sim":
            volumes[f"{name}-models"] = {}
            mount = f"{name}-models:{MODELS_MOUNT}"
            services[f"{name}-fetch"] = {
                "image": ctx.image,
                "command": ["python", "-m", FETCH_MODULE, "--source", service.model.source,
                            "--root", MODELS_MOUNT, "--link", link,
                            *(["--sha256", service.model.sha256] if service.model.sha256 else [])],
                "volumes": [mount],
                "user": "65532:65532",
            }  # fmt: skip
            engine["volumes"] = [f"{mount}:ro"]
            engine["depends_on"] = {
                f"{name}-fetch": {"condition": "service_completed_successfully"}
            }
        services[name] = engine
    gateway = ctx.environment.gateway
    document = services_document(
        ctx,
        endpoints=endpoints,
        key_files={name: f"{SECRETS_DIR}/{secret}" for name, secret in key_secrets.items()},
    )
    services["gateway"] = {
        "image": ctx.image,
        "command": ["python", "-m", "llmfleet.gateway", "--environment", ctx.environment.name,
                    "--host", "0.0.0.0", "--port", str(gateway.port),
                    "--dns-config", GATEWAY_CONFIG],
        "ports": [f"{gateway.host}:{gateway.port}:{gateway.port}"],
        "environment": gateway_env(ctx.environment.observability),
        "configs": [{"source": "llmfleet-gateway", "target": GATEWAY_CONFIG}],
        # compose recreates a container whose definition changed, not one whose config's
        # content did: the digest makes a config change a change of the gateway's own
        "labels": {CONFIG_DIGEST_ANNOTATION: hashlib.sha256(document.encode()).hexdigest()},
        "secrets": [{"source": secret} for secret in key_secrets.values()],
        "networks": ["engines", "default"],
        "user": "65532:65532",
        "read_only": True,
        "deploy": {"replicas": 1},
    }  # fmt: skip
    return {
        "name": f"{ctx.fleet}-{ctx.environment.name}",
        "services": services,
        "networks": {"engines": {"internal": True}, "default": {}},
        "volumes": volumes,
        "configs": {"llmfleet-gateway": {"content": document}},
        # compose writes each from the variable of whoever runs it: never in the file
        "secrets": {secret: {"environment": key_variable(name)}
                    for name, secret in key_secrets.items()},
    }  # fmt: skip
