"""Kubernetes I/O for the simulator: plain REST calls, an informer-like store, and a list+watch loop.

Objects are plain dicts, exactly as the API server sends them. Writes are optimistic (PUT with the
resourceVersion read), so two simulated controllers racing on one VMI get a 409 and retry, as
client-go controllers do. The watch loop survives an API server restart: it retries with backoff,
resumes from the last resourceVersion, and relists on 410 Gone.
"""
from __future__ import annotations

import copy
import json
import logging
import random
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import urllib3

log = logging.getLogger("kubevirt_sim")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    status_subresource: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


VM = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", True)
VMI = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", False)  # no /status
VMIM = Resource("kubevirt.io", "v1", "virtualmachineinstancemigrations", "VirtualMachineInstanceMigration", True)
KUBEVIRT = Resource("kubevirt.io", "v1", "kubevirts", "KubeVirt", True)
DV = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", True)
PVC = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
CONFIGMAP = Resource("", "v1", "configmaps", "ConfigMap", False)
SECRET = Resource("", "v1", "secrets", "Secret", False)
NODE = Resource("", "v1", "nodes", "Node", True)
POD = Resource("", "v1", "pods", "Pod", True)
EVENT = Resource("", "v1", "events", "Event", False)


class ApiError(Exception):
    """status 0 means the server could not be reached."""

    def __init__(self, status: int, reason: str = "", message: str = ""):
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def rv_int(obj: dict | None) -> int:
    """resourceVersion as a number. Opaque to clients in general; in one etcd it is the revision,
    which the simulator uses to order events of different kinds (admission, §3)."""
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", 0))
    except ValueError:
        return 0


def meta_key(obj: dict) -> tuple[str, str]:
    md = obj["metadata"]
    return md.get("namespace", ""), md["name"]


class Kube:
    """Thin REST client on top of one kubernetes.client.ApiClient (auth, TLS, connection pool)."""

    def __init__(self, api_client, request_timeout: float = 10.0):
        self.api = api_client
        self.timeout = request_timeout
        self._watch_responses: set = set()
        self._lock = threading.Lock()
        self._closed = False

    # ---- raw ----

    def _call(self, method: str, path: str, query: dict | None = None, body=None,
              content_type: str = "application/json", stream: bool = False, timeout: float | None = None):
        params = self.api.param_serialize(
            method=method, resource_path=path, query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"])
        try:
            resp = self.api.call_api(*params, _request_timeout=timeout or self.timeout)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiError(0, "Unreachable", str(e)) from None
        except Exception as e:  # the client wraps TLS errors in ApiException(status=0)
            if getattr(e, "status", None) == 0:
                raise ApiError(0, "Unreachable", str(e)) from None
            raise
        if stream and 200 <= resp.status < 300:
            return resp.response
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiError(0, "Unreachable", str(e)) from None
        try:
            payload = json.loads(data) if data else {}
        except ValueError:  # e.g. a plain-text 404 from a server that is still starting
            payload = None
        if not 200 <= resp.status < 300:
            if not isinstance(payload, dict):
                payload = {"message": data[:300].decode(errors="replace")}
            raise ApiError(resp.status, payload.get("reason", ""), payload.get("message", ""))
        if not isinstance(payload, dict):
            raise ApiError(0, "BadResponse", data[:300].decode(errors="replace"))
        return payload

    # ---- verbs ----

    def get(self, res: Resource, namespace: str | None, name: str) -> dict | None:
        try:
            return self._call("GET", res.path(namespace, name))
        except ApiError as e:
            if e.not_found:
                return None
            raise

    def list(self, res: Resource, namespace: str | None = None) -> tuple[list[dict], str]:
        out = self._call("GET", res.path(namespace))
        items = out.get("items") or []
        for it in items:  # list items carry no kind; watch events do
            it.setdefault("kind", res.kind)
            it.setdefault("apiVersion", f"{res.group}/{res.version}".lstrip("/"))
        return items, out["metadata"]["resourceVersion"]

    def create(self, res: Resource, obj: dict, manager: str) -> dict:
        ns = obj["metadata"].get("namespace")
        return self._call("POST", res.path(ns), {"fieldManager": manager}, obj)

    def replace(self, res: Resource, obj: dict, manager: str) -> dict:
        """PUT with the object's resourceVersion: 409 if someone wrote in between."""
        ns, name = meta_key(obj)
        return self._call("PUT", res.path(ns or None, name), {"fieldManager": manager}, obj)

    def replace_status(self, res: Resource, obj: dict, manager: str) -> dict:
        ns, name = meta_key(obj)
        sub = "status" if res.status_subresource else None
        return self._call("PUT", res.path(ns or None, name, sub), {"fieldManager": manager}, obj)

    def patch(self, res: Resource, namespace: str | None, name: str, body, manager: str,
              patch_type: str = "application/merge-patch+json", status: bool = False) -> dict:
        sub = "status" if status and res.status_subresource else None
        return self._call("PATCH", res.path(namespace, name, sub), {"fieldManager": manager}, body, patch_type)

    def delete(self, res: Resource, namespace: str | None, name: str, uid: str | None = None) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("DELETE", res.path(namespace, name), body=body)
        except ApiError as e:
            if not e.not_found:
                raise

    def watch(self, res: Resource, resource_version: str, timeout_seconds: int | None = None) -> Iterator[dict]:
        """Stream events after `resource_version`. Like client-go's reflector the server-side timeout is
        randomised; it is kept short so an API server shutting down gracefully is not held up long."""
        if timeout_seconds is None:
            timeout_seconds = random.randint(2, 4)
        query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(timeout_seconds)}
        if self._closed:
            raise ApiError(0, "Closed", "client closed")
        resp = self._call("GET", res.path(), query, stream=True, timeout=(5, timeout_seconds + 15))
        with self._lock:
            self._watch_responses.add(resp)
            closed = self._closed
        if closed:  # abort_watches() ran while we were connecting
            resp.shutdown()
        try:
            buf = b""
            for chunk in resp.stream(amt=None, decode_content=False):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiError(0, "Unreachable", f"watch broken: {e}") from None
        finally:
            with self._lock:
                self._watch_responses.discard(resp)
            resp.release_conn()

    def abort_watches(self) -> None:
        """Unblock every watch stream now (used by stop())."""
        with self._lock:
            self._closed = True
            responses = list(self._watch_responses)
        for resp in responses:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass


class Store:
    """The informer cache of one kind in one cluster: newest object per (namespace, name)."""

    def __init__(self, res: Resource):
        self.res = res
        self._objs: dict[tuple[str, str], dict] = {}
        self._gone: set[str] = set()  # uids seen deleted: a late write response must not resurrect them
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str) -> dict | None:
        with self._lock:
            obj = self._objs.get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, namespace: str | None = None, where: Callable[[dict], bool] | None = None) -> list[dict]:
        with self._lock:
            objs = [o for (ns, _), o in self._objs.items() if namespace is None or ns == namespace]
            return [copy.deepcopy(o) for o in objs if where is None or where(o)]

    def observe(self, obj: dict) -> bool:
        """Take a newer version (watch event or our own write's response). True if stored."""
        key = meta_key(obj)
        with self._lock:
            if obj["metadata"]["uid"] in self._gone:
                return False
            cur = self._objs.get(key)
            if cur and cur["metadata"]["uid"] == obj["metadata"]["uid"] and rv_int(cur) >= rv_int(obj):
                return False
            self._objs[key] = copy.deepcopy(obj)
            return True

    def forget(self, obj: dict) -> None:
        key = meta_key(obj)
        with self._lock:
            self._gone.add(obj["metadata"]["uid"])
            cur = self._objs.get(key)
            if cur and cur["metadata"]["uid"] == obj["metadata"]["uid"]:
                del self._objs[key]

    def resync(self, items: list[dict]) -> list[tuple[str, dict]]:
        """Replace the content after a (re)list. Like client-go's Replace, every listed object is
        reported (ADDED if new, else MODIFIED even when unchanged): a write whose watch event was lost
        in the outage must still wake the controllers."""
        events = []
        fresh = {meta_key(o): o for o in items}
        with self._lock:
            for key, cur in list(self._objs.items()):
                new = fresh.get(key)
                if new is None or new["metadata"]["uid"] != cur["metadata"]["uid"]:
                    events.append(("DELETED", cur))
                    self._gone.add(cur["metadata"]["uid"])
                    del self._objs[key]
            for key, new in fresh.items():
                events.append(("ADDED" if key not in self._objs else "MODIFIED", new))
                self._objs[key] = new
        return events


class Backoff:
    def __init__(self, first: float = 0.05, cap: float = 2.0):
        self.first, self.cap, self.cur = first, cap, first

    def next(self) -> float:
        d, self.cur = self.cur, min(self.cur * 2, self.cap)
        return d

    def reset(self) -> None:
        self.cur = self.first


EventHandler = Callable[[str, dict, bool], None]  # (type, object, from_initial_list)


class Watcher:
    """list + watch one kind cluster-wide into a Store, calling `handler` for every change."""

    def __init__(self, kube: Kube, store: Store, handler: EventHandler, stop: threading.Event, label: str):
        self.kube, self.store, self.handler, self.stop_event, self.label = kube, store, handler, stop, label
        self.synced = threading.Event()
        self.relists = 0  # observable by tests: a 410 or restart forced a relist
        self.thread = threading.Thread(target=self._run, name=f"watch-{label}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        rv: str | None = None
        backoff = Backoff()
        initial = True
        while not self.stop_event.is_set():
            try:
                if rv is None:
                    items, rv = self.kube.list(self.store.res)
                    for etype, obj in self.store.resync(items):
                        self.handler(etype, obj, initial)
                    if not initial:
                        self.relists += 1
                    initial = False
                    self.synced.set()
                for ev in self.kube.watch(self.store.res, rv):
                    if self.stop_event.is_set():
                        return
                    etype, obj = ev["type"], ev["object"]
                    if etype == "ERROR":
                        if obj.get("code") == 410:  # Gone: too old, relist (client-go reflector does the same)
                            rv = None
                            break
                        raise ApiError(obj.get("code", 500), obj.get("reason", ""), obj.get("message", ""))
                    rv = obj["metadata"]["resourceVersion"]
                    if etype == "BOOKMARK":
                        continue
                    if etype == "DELETED":
                        self.store.forget(obj)
                    else:
                        self.store.observe(obj)
                    self.handler(etype, obj, False)
                backoff.reset()
            except ApiError as e:
                if self.stop_event.is_set():
                    return
                if e.status == 410:
                    rv = None
                    continue
                log.debug("watch %s: %s; retrying", self.label, e)
                self.stop_event.wait(backoff.next())
            except Exception:  # noqa: BLE001 - a watch must never die; log and resume
                if self.stop_event.is_set():
                    return
                log.exception("watch %s failed; retrying", self.label)
                self.stop_event.wait(backoff.next())
