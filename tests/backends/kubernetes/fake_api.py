"""A small Kubernetes API server for tests: real HTTP on 127.0.0.1, in a thread.

No cluster runs on these machines, so the client path (plan, apply, the rollout
wait) and the gateway's discovery are exercised against this: the same URLs,
verbs, content types and status codes a real API server uses, for the kinds
llmfleet renders. What it keeps honest, and where it is simpler:

- Server-side apply (``PATCH`` with ``application/apply-patch+yaml``) needs a
  ``fieldManager``; ``dryRun=All`` answers without storing; a field another
  manager owns with another value is a 409 ``FieldManagerConflict`` unless
  ``force=true``, which takes it over. Field sets are leaf paths; lists are
  atomic (real servers merge lists of maps by key: llmfleet applies whole lists).
  A field the manager applied before and no longer applies is removed.
- A Deployment's ``spec.selector`` is immutable (422), its ``metadata.generation``
  grows when its spec changes; every write gets a new ``resourceVersion``.
- GET, LIST (``labelSelector`` with ``=``, ``!=`` and ``in (...)``; ``fieldSelector``
  ``metadata.name`` and ``involvedObject.name``), DELETE.
- WATCH from a ``resourceVersion``: the events after it, then live ones; a version
  older than the last ``compact()`` gets a 410 ERROR event, as etcd compaction gives.
  ``drop_watches()`` cuts every stream, as an API server restart does.
- Recorded sequences: ``after_apply(kind, name, statuses)`` plays a Deployment's
  recorded status changes once it is applied; ``put``/``delete`` drive EndpointSlices.
- ``GET .../pods/NAME/log?tailLines=N`` answers the lines a test put in ``pod_logs``.
- The service proxy (``.../services/NAME:PORT/proxy/PATH``) forwards any request, its
  answer streamed back, to the URL a test put in ``upstreams[(namespace, NAME)]``: the
  local process standing in for the Service's pods. 404 without the Service, 503
  without an upstream ("no endpoints available"), as a real API server answers.
- ``controller=True`` plays a cluster's controllers, for end-to-end runs through the
  CLI: an applied Deployment gets its pods (ready, on node ``node-a``) and a rolled-out
  status; a deleted one loses its pods. No recording needed.

The server owns its state on its own loop; the test's calls hop onto that loop, so
sync clients (lightkube's) and async tests (the gateway's) can both use it.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import ClientSession, ClientTimeout, web

Obj = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace, name
Path = tuple[str, ...]

KINDS: dict[str, tuple[str, str]] = {
    "ServiceAccount": ("v1", "serviceaccounts"),
    "ConfigMap": ("v1", "configmaps"),
    "Secret": ("v1", "secrets"),
    "Service": ("v1", "services"),
    "Pod": ("v1", "pods"),
    "Event": ("v1", "events"),
    "Deployment": ("apps/v1", "deployments"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "Role": ("rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
    "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices"),
    "PodMonitor": ("monitoring.coreos.com/v1", "podmonitors"),
    "InferencePool": ("inference.networking.k8s.io/v1", "inferencepools"),
}
BY_PLURAL = {plural: kind for kind, (_, plural) in KINDS.items()}
IMMUTABLE: dict[str, Path] = {"Deployment": ("spec", "selector")}
APPLY_TYPE = "application/apply-patch+yaml"
FORWARDED = frozenset({"content-type", "authorization", "accept"})
"""Headers the service proxy passes on, each way."""


def status_body(code: int, reason: str, message: str, causes: list[Obj] | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": message, "reason": reason, "code": code}  # fmt: skip
    if causes is not None:
        body["details"] = {"causes": causes}
    return body


def leaves(obj: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every leaf of ``obj`` with its path; a list (or an empty map) is one leaf."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from leaves(value, (*prefix, key))
    else:
        yield prefix, obj


def get_path(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def set_path(obj: Obj, path: Path, value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = copy.deepcopy(value)


def remove_path(obj: Obj, path: Path) -> None:
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(parents) - 1, 0, -1):  # drop maps the removal emptied
        if not parents[depth]:
            parents[depth - 1].pop(path[depth - 1], None)


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    for term in re.split(r",(?![^(]*\))", selector or ""):
        term = term.strip()
        if not term:
            continue
        if match := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\((.*)\)", term):
            values = {v.strip() for v in match[3].split(",")}
            if (labels.get(match[1]) in values) != (match[2] == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif labels.get(term) is None:
            return False
    return True


def fields_match(selector: str | None, obj: Obj) -> bool:
    for term in (selector or "").split(","):
        if "=" in term:
            key, value = term.split("=", 1)
            if str(get_path(obj, tuple(key.split(".")))) != value:
                return False
    return True


def managed_fields(owners: dict[Path, str]) -> list[Obj]:
    """``metadata.managedFields`` in the FieldsV1 shape (``f:``-prefixed keys)."""
    by_manager: dict[str, Obj] = {}
    for path, manager in sorted(owners.items()):
        node = by_manager.setdefault(manager, {})
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return [{"manager": m, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": f}
            for m, f in sorted(by_manager.items())]  # fmt: skip


@dataclass
class Watcher:
    kind: str
    namespace: str
    labels: str | None
    fields: str | None
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)

    def wants(self, kind: str, obj: Obj) -> bool:
        meta = obj["metadata"]
        return (kind == self.kind and meta["namespace"] == self.namespace
                and selector_matches(self.labels, meta.get("labels") or {})
                and fields_match(self.fields, obj))  # fmt: skip


class FakeApiServer:
    """The API server; ``url`` once started. Use as a context manager."""

    def __init__(self, *, controller: bool = False) -> None:
        self.controller = controller
        self.objects: dict[Key, Obj] = {}
        self.owners: dict[Key, dict[Path, str]] = {}
        self.events: list[tuple[int, str, str, Obj]] = []  # rv, type, kind, object
        self.floor = 0
        self.requests: list[tuple[str, str]] = []  # method, path?query: what clients did
        self._rv = itertools.count(100)
        self._watchers: list[Watcher] = []
        self._recordings: dict[tuple[str, str], list[Obj]] = {}
        self.pod_logs: dict[tuple[str, str], list[str]] = {}
        self.absent: set[str] = set()
        self.upstreams: dict[tuple[str, str], str] = {}
        """(namespace, Service) -> the URL its service proxy forwards to"""
        self._session: ClientSession | None = None
        """kinds this cluster does not serve (a CRD not installed): 404, as a real one"""
        """(namespace, pod) -> its log lines, as ``GET .../pods/NAME/log`` answers"""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.watching = threading.Event()
        """set once a watch is open (a test waits on it from a thread)"""

    # --- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            base = prefix + "/namespaces/{namespace}/{plural}"
            app.router.add_route("*", base, self._collection)
            app.router.add_route("*", base + "/{name}", self._item)
        app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}/log", self._log)
        proxy = "/api/v1/namespaces/{namespace}/services/{service}/proxy{tail:(/.*)?}"
        app.router.add_route("*", proxy, self._proxy)
        self._session = ClientSession(timeout=ClientTimeout(total=None))
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        self._drop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _sync(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return self._call(run())

    # --- what tests do -----------------------------------------------------------------
    def put(self, obj: Obj, *, manager: str | None = None, owns: list[Path] | None = None) -> Obj:
        """Create or replace ``obj`` as a controller would: an ``Update`` by ``manager``,
        which then owns ``owns`` (default: every field it set)."""
        body = copy.deepcopy(obj)
        return self._sync(lambda: self._put(body, manager, owns))  # type: ignore[no-any-return]

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._sync(lambda: self._delete((kind, namespace, name)))

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._sync(lambda: copy.deepcopy(self.objects.get((kind, namespace, name))))  # type: ignore[no-any-return]

    def after_apply(self, kind: str, name: str, statuses: list[Obj], step_s: float = 0.01) -> None:
        """Once ``name`` is applied (not dry run), set its status to each of ``statuses``
        in turn: a recorded rollout as the controllers wrote it."""
        self._recordings[(kind, name)] = [{"status": s, "step_s": step_s} for s in statuses]

    def compact(self) -> None:
        """Forget the event history: a watch from an older version gets 410 Gone."""
        self._sync(self._compact)

    def drop_watches(self) -> None:
        self._sync(self._drop)

    def watch_count(self) -> int:
        return self._sync(lambda: len(self._watchers))  # type: ignore[no-any-return]

    # --- the store -------------------------------------------------------------------
    def _compact(self) -> None:
        self.floor = next(self._rv)
        self.events.clear()

    def _drop(self) -> None:
        for watcher in self._watchers:
            watcher.queue.put_nowait(None)

    def _record(self, kind: str, event: str, obj: Obj) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self.events.append((rv, event, kind, copy.deepcopy(obj)))
        for watcher in self._watchers:
            if watcher.wants(kind, obj):
                watcher.queue.put_nowait({"type": event, "object": copy.deepcopy(obj)})

    def _stamp(self, key: Key, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        meta["name"], meta["namespace"] = key[2], key[1]
        meta["uid"] = (old or {}).get("metadata", {}).get("uid") or f"uid-{key[2]}-{next(self._rv)}"
        meta["creationTimestamp"] = "2026-12-05T12:00:00Z"
        meta["resourceVersion"] = str(next(self._rv))
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        if old is None or old.get("spec") != obj.get("spec"):
            generation += 1
        meta["generation"] = generation
        meta["managedFields"] = managed_fields(self.owners.get(key, {}))
        obj.setdefault("apiVersion", KINDS[key[0]][0])

    def _put(self, obj: Obj, manager: str | None, owns: list[Path] | None) -> Obj:
        key: Key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        old = self.objects.get(key)
        if manager is not None:
            paths = owns if owns is not None else [p for p, _ in leaves(_owned_part(obj))]
            self.owners.setdefault(key, {}).update(dict.fromkeys(paths, manager))
        self._stamp(key, obj, old)
        self.objects[key] = obj
        self._record(key[0], "MODIFIED" if old else "ADDED", obj)
        return obj

    def _delete(self, key: Key) -> Obj | None:
        obj = self.objects.pop(key, None)
        self.owners.pop(key, None)
        if obj is not None and self.controller and key[0] == "Deployment":
            for pod in self._pods_of(obj):
                self._delete(("Pod", key[1], pod["metadata"]["name"]))
        if obj is not None:
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            self._record(key[0], "DELETED", obj)
        return obj

    def _apply(self, key: Key, body: Obj, manager: str, *, force: bool, dry: bool) -> web.Response:
        old = self.objects.get(key)
        owners = dict(self.owners.get(key, {}))
        applied = dict(leaves(_owned_part(body)))
        conflicts = [
            {"type": "FieldManagerConflict", "field": "." + ".".join(path),
             "message": f'conflict with "{owners[path]}" using {body.get("apiVersion")}'}
            for path, value in applied.items()
            if owners.get(path, manager) != manager and get_path(old, path) != value
        ]  # fmt: skip
        if conflicts and not force:
            text = "; ".join(f"{c['message']}: {c['field']}" for c in conflicts)
            message = f"Apply failed with {len(conflicts)} conflict(s): {text}"
            return _json(409, status_body(409, "Conflict", message, conflicts))
        merged = copy.deepcopy(old) if old else {"metadata": {}}
        for path in [p for p, m in owners.items() if m == manager and p not in applied]:
            remove_path(merged, path)
            del owners[path]
        for path, value in applied.items():
            set_path(merged, path, value)
            owners[path] = manager
        merged["apiVersion"], merged["kind"] = body["apiVersion"], body["kind"]
        immutable = IMMUTABLE.get(key[0])
        if old and immutable and get_path(old, immutable) != get_path(merged, immutable):
            field_name = ".".join(immutable)
            cause = {
                "type": "FieldValueInvalid",
                "field": field_name,
                "message": "field is immutable",
            }
            message = f'{key[0]}.apps "{key[2]}" is invalid: {field_name}: field is immutable'
            return _json(422, status_body(422, "Invalid", message, [cause]))
        if dry:
            saved = self.owners.get(key)
            self.owners[key] = owners
            self._stamp(key, merged, old)
            merged["metadata"]["resourceVersion"] = (old or merged)["metadata"]["resourceVersion"]
            if saved is None:
                del self.owners[key]
            else:
                self.owners[key] = saved
            return _json(200 if old else 201, merged)
        self.owners[key] = owners
        self._stamp(key, merged, old)
        self.objects[key] = merged
        self._record(key[0], "MODIFIED" if old else "ADDED", merged)
        if steps := self._recordings.pop((key[0], key[2]), None):
            asyncio.get_running_loop().create_task(self._play(key, steps))
        elif self.controller and key[0] == "Deployment":
            self._roll_out(key)
        return _json(200 if old else 201, merged)

    def _pods_of(self, deployment: Obj) -> list[Obj]:
        labels = deployment["spec"]["selector"]["matchLabels"]
        namespace = deployment["metadata"]["namespace"]
        return [o for (k, ns, _), o in sorted(self.objects.items())
                if k == "Pod" and ns == namespace
                and labels.items() <= (o["metadata"].get("labels") or {}).items()]  # fmt: skip

    def _roll_out(self, key: Key) -> None:
        """What the Deployment and ReplicaSet controllers and kubelets would end with:
        the template's pods, ready; old pods gone; a status that says rolled out."""
        deployment = self.objects[key]
        spec, generation = deployment["spec"], deployment["metadata"]["generation"]
        template = spec["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        wanted = {f"{key[2]}-{digest}-{index}" for index in range(spec.get("replicas", 1))}
        for pod in self._pods_of(deployment):
            if pod["metadata"]["name"] not in wanted:
                self._delete(("Pod", key[1], pod["metadata"]["name"]))
        for index in range(spec.get("replicas", 1)):
            name = f"{key[2]}-{digest}-{index}"
            if ("Pod", key[1], name) in self.objects:
                continue
            labels = {**template["metadata"]["labels"], "pod-template-hash": digest}
            ready = [{"type": "PodScheduled", "status": "True"},
                     {"type": "Ready", "status": "True"}]  # fmt: skip
            statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True,
                         "restartCount": 0, "state": {"running": {}}}
                        for c in template["spec"]["containers"]]  # fmt: skip
            self._put({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": key[1], "labels": labels},
                       "spec": {**template["spec"], "nodeName": "node-a"},
                       "status": {"phase": "Running", "podIP": f"10.0.0.{10 + index}",
                                  "startTime": "2026-12-05T12:00:00Z", "conditions": ready,
                                  "containerStatuses": statuses}}, None, None)  # fmt: skip
        replicas = spec.get("replicas", 1)
        status = {"observedGeneration": generation, "replicas": replicas,
                  "updatedReplicas": replicas, "readyReplicas": replicas,
                  "availableReplicas": replicas}  # fmt: skip
        self._put({**self.objects[key], "status": status}, None, None)

    async def _play(self, key: Key, steps: list[Obj]) -> None:
        for step in steps:
            await asyncio.sleep(step["step_s"])
            obj = copy.deepcopy(self.objects[key])
            obj["status"] = step["status"]
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            self.objects[key] = obj
            self._record(key[0], "MODIFIED", obj)

    # --- HTTP ------------------------------------------------------------------------
    def _key(self, request: web.Request) -> Key | None:
        """The object a URL names; None for a kind this server does not serve."""
        info = request.match_info
        kind = BY_PLURAL.get(info["plural"])
        if kind is None or kind in self.absent:
            return None
        return kind, info["namespace"], info.get("name", "")

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        key = self._key(request)
        if key is None:
            return _not_served()
        kind, namespace, _ = key
        query = request.query
        if request.method != "GET":
            return _json(405, status_body(405, "MethodNotAllowed", request.method))
        labels, fields = query.get("labelSelector"), query.get("fieldSelector")
        if query.get("watch") in ("true", "1"):
            return await self._watch(request, Watcher(kind, namespace, labels, fields))
        listing = Watcher(kind, namespace, labels, fields)
        items = [copy.deepcopy(o) for (k, _, _), o in sorted(self.objects.items())
                 if listing.wants(k, o)]  # fmt: skip
        version = KINDS[kind][0]
        rv = str(next(self._rv))
        return _json(200, {"kind": f"{kind}List", "apiVersion": version,
                           "metadata": {"resourceVersion": rv}, "items": items})  # fmt: skip

    async def _watch(self, request: web.Request, watcher: Watcher) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        since = request.query.get("resourceVersion")
        if since and int(since) < self.floor:
            gone = status_body(410, "Expired", f"too old resource version: {since} ({self.floor})")
            await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            return response
        if since:
            backlog = [{"type": t, "object": copy.deepcopy(o)} for rv, t, k, o in self.events
                       if rv > int(since) and watcher.wants(k, o)]  # fmt: skip
        else:
            backlog = [{"type": "ADDED", "object": copy.deepcopy(o)}
                       for (k, _, _), o in sorted(self.objects.items())
                       if watcher.wants(k, o)]  # fmt: skip
        self._watchers.append(watcher)
        self.watching.set()
        try:
            for event in backlog:
                await response.write(json.dumps(event).encode() + b"\n")
            while (event := await watcher.queue.get()) is not None:
                await response.write(json.dumps(event).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.remove(watcher)
        return response

    async def _item(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        key = self._key(request)
        if key is None:
            return _not_served()
        obj = self.objects.get(key)
        if request.method == "GET":
            if obj is None:
                return _json(404, status_body(404, "NotFound", f'{key[0]} "{key[2]}" not found'))
            return _json(200, obj)
        if request.method == "DELETE":
            if self._delete(key) is None:
                return _json(404, status_body(404, "NotFound", f'{key[0]} "{key[2]}" not found'))
            return _json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if request.method == "PATCH":
            return await self._patch(request, key)
        return _json(405, status_body(405, "MethodNotAllowed", request.method))

    async def _log(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path_qs))
        info = request.match_info
        lines = self.pod_logs.get((info["namespace"], info["name"]))
        if lines is None:
            return _json(404, status_body(404, "NotFound", f'pods "{info["name"]}" not found'))
        tail = int(request.query.get("tailLines", len(lines)))
        text = "".join(f"{line}\n" for line in lines[len(lines) - tail :])
        return web.Response(text=text, content_type="text/plain")

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        info = request.match_info
        parts = info["service"].split(":")  # [scheme:]name[:port]
        namespace, service = info["namespace"], parts[parts[0] in ("http", "https")]
        if ("Service", namespace, service) not in self.objects:
            return _json(404, status_body(404, "NotFound", f'services "{service}" not found'))
        upstream = self.upstreams.get((namespace, service))
        if upstream is None:
            message = f'no endpoints available for service "{service}"'
            return _json(503, status_body(503, "ServiceUnavailable", message))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        async with self._session.request(
            request.method, upstream + (info["tail"] or "/"), params=request.query,
            data=await request.read(), headers=headers,
        ) as answer:  # fmt: skip
            response = web.StreamResponse(status=answer.status, headers={
                k: v for k, v in answer.headers.items() if k.lower() in FORWARDED})  # fmt: skip
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _patch(self, request: web.Request, key: Key) -> web.Response:
        if request.content_type != APPLY_TYPE:
            return _json(415, status_body(415, "UnsupportedMediaType", request.content_type))
        manager = request.query.get("fieldManager")
        if not manager:
            message = "PATCH is not supported: fieldManager is required for apply requests"
            return _json(400, status_body(400, "BadRequest", message))
        body = yaml.safe_load(await request.text())
        meta = body.get("metadata") or {}
        if body.get("kind") != key[0] or meta.get("name") != key[2]:
            return _json(400, status_body(400, "BadRequest", "the body names another object"))
        meta["namespace"] = key[1]
        return self._apply(key, body, manager, force=request.query.get("force") == "true",
                           dry=request.query.get("dryRun") == "All")  # fmt: skip


def _owned_part(obj: Obj) -> Obj:
    """What a manager can own: all but identity and status."""
    body = copy.deepcopy(obj)
    for key in ("apiVersion", "kind", "status"):
        body.pop(key, None)
    meta = body.get("metadata", {})
    for key in ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                "managedFields"):  # fmt: skip
        meta.pop(key, None)
    if not meta:
        body.pop("metadata", None)
    return body


def _not_served() -> web.Response:
    message = "the server could not find the requested resource"
    return _json(404, status_body(404, "NotFound", message))


def _json(status: int, body: Obj) -> web.Response:
    """JSON as the API server sends it: ``Content-Type: application/json``, no charset
    (lightkube reads an error's Status only then)."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def main() -> None:
    """Serve in a process of its own until stdin closes (benches: a server sharing the
    client's interpreter would share its GIL and slow both)."""
    import sys

    with FakeApiServer() as server:
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
