"""The only module that talks to Kubernetes (and the only importer of the `kubernetes` package).

One `Cluster` per kubeconfig context. Every API error becomes a DlmError that names the cluster,
the context and the verb, so the user knows which side said no.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3Error

from kubectl_dlm import __version__
from kubectl_dlm.errors import ClusterError, Conflict, DlmError, Forbidden, NotFound, UsageError
from kubectl_dlm.model import KINDS, Obj, Source, TargetInfo, meta, display_name

FIELD_MANAGER = "kubectl-dlm"
REQUEST_TIMEOUT = 30
# Transient failures worth retrying: too many requests, server errors, a watch that expired.
RETRY_STATUS = (429, 500, 502, 503, 504)


@dataclass
class Cluster:
    context: str
    namespace: str
    server: str
    api: Any  # kubernetes.client.ApiClient
    requests: int = 0  # API requests made, for benchmarks and tests
    # access_review's answers: migrate checks every VM of a batch on one connection, and asks the
    # same SelfSubjectAccessReviews for each (they name namespaces and resources, not VMs).
    reviews: Dict[tuple, tuple] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.context

    def describe(self) -> str:
        return f"cluster {self.server} (context {self.context})"


def connect(kubeconfig: Optional[str], context: Optional[str]) -> Cluster:
    """Load a kubeconfig context like kubectl does (--kubeconfig, else $KUBECONFIG, else ~/.kube/config)."""
    config_file = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    where = kubeconfig or ("$KUBECONFIG" if os.environ.get("KUBECONFIG") else "~/.kube/config")
    chosen = None
    try:
        contexts, active = _contexts(config_file)
        chosen = active
        if context:
            chosen = next((c for c in contexts if c["name"] == context), None)
            if chosen is None:
                known = ", ".join(sorted(c["name"] for c in contexts)) or "none"
                raise UsageError(f"context {context} not found in {where}", f"known contexts: {known}")
        if chosen is None:
            raise UsageError(f"{where} has no current context", "pass --context")
        configuration = k8s.Configuration()
        with _library_log() as said:
            k8s_config.load_kube_config(config_file=config_file, context=chosen["name"],
                                        client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        if "File does not exist" in str(exc) and chosen is not None:  # a client certificate, key or CA file
            raise UsageError(f"cannot load the credentials of context {chosen['name']} from {where}: "
                             f"{_first_line(exc)}", "fix the file path under users[].user (or clusters[].cluster) "
                             "in the kubeconfig, or log in again") from None
        raise UsageError(f"cannot load kubeconfig {where}: {_first_line(exc)}", "pass --kubeconfig or set KUBECONFIG") from None
    _check_credentials(configuration, _user_of(config_file, chosen), chosen["name"], said)
    configuration.retries = 0  # we retry ourselves, with backoff, only what is worth retrying
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    api = k8s.ApiClient(configuration)
    # Our own User-Agent, as kubectl sends its own: the API server's audit log can then tell the
    # plugin's requests from other clients' (the generated client's default is OpenAPI-Generator/...).
    api.user_agent = f"kubectl-dlm/{__version__}"
    return Cluster(context=chosen["name"], namespace=namespace, server=configuration.host, api=api)


@contextlib.contextmanager
def _library_log():
    """Collect what the client library logs while it loads a kubeconfig (it logs a failing exec
    credential plugin as a raw `ERROR:root:` line and carries on without credentials)."""
    said: List[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:  # errors only: a warning is no reason to stop
                said.append(record.getMessage())

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers, root.level = [Collect()], logging.WARNING
    try:
        yield said
    finally:
        root.handlers, root.level = saved, level


def _merged(config_file: str):
    """The client's merged view of a kubeconfig (or a ':'-separated list), parsed once per process
    while the files are unchanged: connecting to the source and the target read it four times,
    each a pure-Python YAML parse (load_kube_config still parses it itself)."""
    from kubernetes.config.kube_config import KubeConfigMerger

    stamp = []
    for path in config_file.split(os.pathsep):
        try:
            st = os.stat(os.path.expanduser(path))
            stamp.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append((path, None, None))
    key = (config_file, tuple(stamp))
    if key not in _MERGED:
        _MERGED.clear()
        _MERGED[key] = KubeConfigMerger(config_file)
    return _MERGED[key]


_MERGED: Dict[tuple, Any] = {}


def _user_of(config_file: str, context: Dict[str, Any]) -> Dict[str, Any]:
    name = (context.get("context") or {}).get("user")
    for user in _merged(config_file).config.value.get("users") or []:
        user = dict(getattr(user, "value", user))
        if user.get("name") == name:
            return {"name": name, **dict(getattr(user.get("user"), "value", user.get("user")) or {})}
    return {"name": name}


def _check_credentials(configuration: Any, user: Dict[str, Any], context: str, said: List[str]) -> None:
    """No request leaves without the credentials the kubeconfig asks for: a failing exec plugin is
    one error naming the plugin and its exit status, not a 401 blamed on the server."""
    has_token = bool((configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken"))
    has_cert = bool(configuration.cert_file)
    plugin = dict(getattr(user.get("exec"), "value", user.get("exec")) or {}) if user.get("exec") else None
    if plugin and not (has_token or has_cert):
        why = "; ".join(said) or "it gave no token or client certificate"
        match = re.search(r"process returned (\d+)\.?\s*(.*)", why, re.S)
        if match:
            why = f"exit status {match.group(1)}" + (f": {match.group(2).strip()}" if match.group(2).strip() else "")
        raise ClusterError(f"the credential plugin {plugin.get('command')} of user {user.get('name')} (context "
                           f"{context}) failed: {_first_line(why)}; no request was sent",
                           "run the plugin's login step again (or fix users[].user.exec in the kubeconfig)")
    if said:  # anything else the library only logged: say it once, as ours, and stop
        raise UsageError(f"cannot load the credentials of context {context}: {_first_line(said[0])}",
                         "fix users[].user in the kubeconfig")


def _first_line(value: Any) -> str:
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else ""


def _contexts(config_file: str):
    """(contexts, current) of a kubeconfig or a ':'-separated list of them. Unlike the client's
    list_kube_config_contexts this accepts a file without current-context, as kubectl does."""
    merged = _merged(config_file).config
    if merged is None:
        raise ConfigException(f"no kubeconfig file found at {config_file}")
    value = merged.value
    contexts = [dict(getattr(c, "value", c)) for c in value.get("contexts") or []]
    current = next((c for c in contexts if c.get("name") == value.get("current-context")), None)
    return contexts, current


def _path(kind: str, namespace: Optional[str], name: Optional[str] = None, subresource: str = "") -> str:
    group, version, plural, namespaced = KINDS[kind]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if subresource:
        base += f"/{subresource}"
    return base


def call(cluster: Cluster, method: str, path: str, verb: str, *, query: Optional[Dict[str, Any]] = None,
         body: Any = None, content_type: str = "application/json", attempts: int = 4, expired: bool = False,
         text: bool = False) -> Any:
    """One API request, retried with backoff on transient errors; returns the JSON body, decoded
    once (raw bytes to json.loads: no client model classes). `expired`: raise Expired on HTTP 410."""
    delay = 0.5
    for attempt in range(attempts):
        with _COUNTING:  # threads share a Cluster (read_named, migrate's checks): count every request
            cluster.requests += 1
        try:
            return _request(cluster, method, path, query or {}, body, content_type, text)
        except ApiException as exc:
            if expired and exc.status == 410:
                raise Expired() from None
            if exc.status in RETRY_STATUS and attempt + 1 < attempts:
                time.sleep(delay)
                delay *= 2
                continue
            raise api_error(cluster, exc, verb) from None
        except (Urllib3Error, OSError) as exc:
            if attempt + 1 < attempts:
                time.sleep(delay)
                delay *= 2
                continue
            raise ClusterError(f"cannot reach {cluster.describe()} to {verb}: {_reason(exc)}",
                               "check the server address, your network, and that the cluster is up") from None
    raise AssertionError("unreachable")


_COUNTING = threading.Lock()


def _request(cluster: Cluster, method: str, path: str, query: Dict[str, Any], body: Any, content_type: str,
             text: bool = False) -> Any:
    api = cluster.api
    headers = {"Content-Type": content_type, "Accept": "text/plain" if text else "application/json"}
    if body is not None and not isinstance(body, (bytes, str)):
        # YAML content types get our UTF-8 bytes; for JSON ones the client's escapes are valid JSON.
        body = encode(body) if "yaml" in content_type else body
    if hasattr(api, "param_serialize"):  # kubernetes >= 35: the REST layer encodes JSON and YAML bodies itself
        method, url, headers, data, post = api.param_serialize(
            method=method, resource_path=path, query_params=list(query.items()), header_params=headers,
            body=body, auth_settings=["BearerToken"])
        response = api.call_api(method, url, headers, data, post, _request_timeout=REQUEST_TIMEOUT)
        raw = response.read()
        if response.status >= 400:
            raise ApiException(http_resp=response)
        if text:
            return raw.decode("utf-8", errors="replace") if raw else ""
        return json.loads(raw) if raw else None
    data = body if body is None or isinstance(body, (bytes, str)) else json.dumps(body)
    raw = api.call_api(path, method, query_params=list(query.items()), header_params=headers, body=data,
                       auth_settings=["BearerToken"], _return_http_data_only=True, _preload_content=False,
                       _request_timeout=REQUEST_TIMEOUT).data
    if text:
        return raw.decode("utf-8", errors="replace") if raw else ""
    return json.loads(raw) if raw else None


def encode(body: Any) -> bytes:
    """JSON as UTF-8 bytes, for the API server's YAML decoder (apply-patch+yaml; YAML is a superset
    of JSON). The client's own json.dumps escapes characters outside the BMP as UTF-16 surrogate
    pairs (\\ud83d\\ude00), which that decoder rejects ("invalid Unicode character escape code"), so
    those go as raw UTF-8. The characters YAML reads as line breaks (NEL, LS, PS) would be folded
    inside a string, so those, like the other C1 controls and the BOM, stay \\u escapes (valid in
    the BMP), as Go's encoding/json does for LS and PS."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


_YAML_UNSAFE = re.compile("[\u0080-\u009f\u2028\u2029\ufeff]")


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "certificate verify failed"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200]


def api_error(cluster: Cluster, exc: ApiException, verb: str) -> DlmError:
    message = exc.reason or ""
    try:
        message = json.loads(exc.body).get("message") or message
    except (TypeError, ValueError, AttributeError):
        pass
    if exc.status == 401:
        return ClusterError(f"{cluster.describe()} did not accept the credentials of context {cluster.context} to "
                            f"{verb} (401 {message or 'Unauthorized'}): the token or client certificate is expired "
                            "or not valid there", "log in again, or refresh the credentials in the kubeconfig")
    if exc.status == 403:
        return Forbidden(f"{cluster.describe()} refused to {verb}: {message}",
                            "ask for RBAC permission, or use a context that has it")
    if exc.status == 404:
        return NotFound(f"{verb}: not found on {cluster.describe()}: {message}")
    if exc.status == 409:
        return Conflict(f"{verb} on {cluster.describe()}: {message}")
    if exc.status in (400, 422):
        return UsageError(f"{cluster.describe()} rejected {verb}: {message}")
    return ClusterError(f"{cluster.describe()} failed to {verb}: HTTP {exc.status} {message}")


def proxy_text(cluster: Cluster, namespace: str, pod: str, port: int, path: str, scheme: str = "https") -> str:
    """GET a pod's own endpoint through the API server's pod proxy (pods/proxy), as text."""
    return call(cluster, "GET", f"/api/v1/namespaces/{namespace}/pods/{scheme}:{pod}:{port}/proxy/{path}",
                f"get pods/proxy {namespace}/{pod}:{port}/{path}", attempts=1, text=True)


def get(cluster: Cluster, kind: str, namespace: Optional[str], name: str) -> Optional[Obj]:
    try:
        return call(cluster, "GET", _path(kind, namespace, name), f"get {kind} {namespace}/{name}")
    except NotFound:
        return None


# Objects per LIST page: kubectl's default --chunk-size. A namespace of thousands of VMs is read in
# pages of this size, never as one giant response.
LIST_PAGE = 500


def list_objects(cluster: Cluster, kind: str, namespace: Optional[str] = None, selector: str = "",
                 field_selector: str = "") -> List[Obj]:
    """Every object of a kind, in pages (`limit`/`continue`), as kubectl and client-go's pager read.

    When a continue token has expired (HTTP 410) the list starts over without a limit, as the
    pager does with FullListIfExpired (k8s.io/client-go/tools/pager/pager.go).
    """
    where = f" in namespace {namespace}" if namespace else (" in all namespaces" if KINDS[kind][3] else "")
    verb = f"list {KINDS[kind][2]}{where}"
    query: Dict[str, Any] = {k: v for k, v in (("labelSelector", selector), ("fieldSelector", field_selector)) if v}
    items: List[Obj] = []
    page = dict(query, limit=LIST_PAGE)
    while True:
        try:
            body = call(cluster, "GET", _path(kind, namespace), verb, query=page, expired=bool(page.get("continue")))
        except Expired:
            items, page = [], dict(query)  # one full list: the pages so far may be out of date
            continue
        items.extend(body.get("items") or [])
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            break
        page = dict(query, limit=LIST_PAGE, **{"continue": token})
    group, version, _, _ = KINDS[kind]
    api_version = f"{group}/{version}" if group else version
    for item in items:  # list items carry no kind/apiVersion; the rest of the code relies on them
        item.setdefault("kind", kind)
        item.setdefault("apiVersion", api_version)
    return items


def apply(cluster: Cluster, obj: Obj, dry_run: bool = False, force: bool = False) -> Obj:
    """Server-side apply with field manager kubectl-dlm; returns the object as stored (or as it would be)."""
    m = meta(obj)
    query: Dict[str, Any] = {"fieldManager": FIELD_MANAGER}
    if force:
        query["force"] = "true"
    if dry_run:
        query["dryRun"] = "All"
    result = call(cluster, "PATCH", _path(obj["kind"], m.get("namespace"), m["name"]),
                  f"apply {obj['kind']} {display_name(m.get('namespace'), m['name'])}", query=query, body=obj,
                  content_type="application/apply-patch+yaml")
    # Some client versions drop the body of a 201 Created; read the object back then.
    return result or get(cluster, obj["kind"], m.get("namespace"), m["name"]) or obj


def merge_patch(cluster: Cluster, kind: str, namespace: str, name: str, body: Obj, dry_run: bool = False) -> Obj:
    """JSON merge patch, e.g. annotations only. Not server-side apply: an apply by our field manager
    that leaves out the fields it applied before (a blank DataVolume's spec) would remove them."""
    query = {"dryRun": "All"} if dry_run else None
    return call(cluster, "PATCH", _path(kind, namespace, name), f"patch {kind} {namespace}/{name}", query=query,
                body=body, content_type="application/merge-patch+json")


def delete(cluster: Cluster, kind: str, namespace: str, name: str, dry_run: bool = False,
           propagation: Optional[str] = None) -> bool:
    """Delete; `propagation` Orphan keeps what the object owns (a VM's dataVolumeTemplate disks)."""
    query: Dict[str, Any] = {"dryRun": "All"} if dry_run else {}
    if propagation:
        query["propagationPolicy"] = propagation
    try:
        call(cluster, "DELETE", _path(kind, namespace, name), f"delete {kind} {namespace}/{name}", query=query or None)
        return True
    except NotFound:
        return False


class WatchHandle:
    """Lets another thread end a watch that is blocked reading from the network: shutdown() on the
    open response wakes the read (urllib3 >= 2.3), so the watching thread can be joined before the
    interpreter exits (a thread left inside network I/O at exit can abort the process)."""

    def __init__(self) -> None:
        self.response: Any = None
        self.closed = False

    def opened(self, response: Any) -> None:
        self.response = response
        if self.closed:
            self.close()

    def close(self) -> None:
        self.closed = True
        response = self.response
        if response is None:
            return
        # shutdown() wakes the reading thread, which then closes the response itself (close() from
        # here would pull the file from under its read); close() only where shutdown is missing.
        method = getattr(response, "shutdown", None) or getattr(response, "close", None)
        try:
            if method is not None:
                method()
        except Exception:  # noqa: BLE001 - shutting down a half-dead connection may fail in many ways
            pass


def watch(cluster: Cluster, kind: str, namespace: str, resource_version: str, selector: str = "",
          field_selector: str = "", timeout: int = 60, handle: Optional[WatchHandle] = None) -> Iterator[Dict[str, Any]]:
    """Watch events from resource_version; raises Expired when the server answers 410."""
    group, version, plural, _ = KINDS[kind]
    custom = k8s.CustomObjectsApi(cluster.api)
    core = k8s.CoreV1Api(cluster.api)
    kwargs: Dict[str, Any] = {"resource_version": resource_version, "timeout_seconds": timeout,
                              "allow_watch_bookmarks": True}
    if selector:
        kwargs["label_selector"] = selector
    if field_selector:
        kwargs["field_selector"] = field_selector
    if group:
        func: Callable = custom.list_namespaced_custom_object
        args: tuple = (group, version, namespace, plural)
    else:
        func = getattr(core, f"list_namespaced_{_snake(kind)}")
        args = (namespace,)
        kwargs["_preload_content"] = False
    # A read timeout a little past the server's: a silent, half-open connection ends too.
    kwargs["_request_timeout"] = (REQUEST_TIMEOUT, timeout + 15)
    cluster.requests += 1
    opener = func
    if handle is not None:
        def opener(*a: Any, **kw: Any) -> Any:
            response = func(*a, **kw)
            handle.opened(response)
            return response
    stream = k8s_watch.Watch().stream(opener, *args, **kwargs)
    try:
        for event in stream:
            obj = event.get("raw_object") or event.get("object")
            if event.get("type") == "ERROR":
                code = (obj or {}).get("code")
                if code == 410:
                    raise Expired()
                raise ClusterError(f"watch {plural} on {cluster.describe()} failed: {(obj or {}).get('message')}")
            yield {"type": event["type"], "object": obj}
    except ApiException as exc:
        if exc.status == 410:
            raise Expired() from None
        raise api_error(cluster, exc, f"watch {plural} in namespace {namespace}") from None
    except (Urllib3Error, OSError) as exc:
        raise Disconnected(str(exc)) from None


class Expired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class Disconnected(Exception):
    """The watch connection broke: reconnect from the last resourceVersion."""


def _snake(kind: str) -> str:
    out = ""
    for ch in kind:
        out += ("_" + ch.lower()) if ch.isupper() and out else ch.lower()
    return out


# --- reading what a render needs --------------------------------------------------------------

SOURCE_KINDS = ("VirtualMachine", "VirtualMachineInstance", "VirtualMachineInstanceMigration",
                "DataVolume", "PersistentVolumeClaim")
REFERENCED_KINDS = ("Secret", "ConfigMap", "VirtualMachineInstancetype", "VirtualMachinePreference",
                    "ControllerRevision")


def read_source(cluster: Cluster, namespace: str, names: List[str], selector: str = "") -> Source:
    """One LIST per kind, whatever the number of VMs: a batch costs the same few requests as one VM."""
    source = Source(live=True)
    vms = list_objects(cluster, "VirtualMachine", namespace, selector)
    if names:
        wanted = set(names)
        vms = [vm for vm in vms if meta(vm).get("name") in wanted]
    for vm in vms:
        source.add(vm)
    if not vms:
        return source
    for kind in SOURCE_KINDS[1:]:
        for obj in list_objects(cluster, kind, namespace):
            source.add(obj)
    # What the VMs reference, and only that: Secrets and ConfigMaps by name, or for a big batch in
    # one LIST where allowed (read_named), instancetypes per referenced kind.
    from kubectl_dlm.refs import namespaced_kind, references

    named: Dict[str, set] = {"Secret": set(), "ConfigMap": set()}
    listed = set()
    for vm in vms:
        refs = references(vm, source.get("VirtualMachineInstance", namespace, meta(vm).get("name", "")))
        named["Secret"].update(refs.secrets)
        named["ConfigMap"].update(refs.configmaps)
        for matcher in (refs.instancetype, refs.preference):
            if matcher and namespaced_kind(matcher[0]):
                listed.add(namespaced_kind(matcher[0]))
            if matcher and matcher[2]:
                listed.add("ControllerRevision")
    for kind, names in named.items():
        for obj in read_named(cluster, kind, namespace, names).values():
            source.add(obj)
    for kind in REFERENCED_KINDS:
        if kind in listed:
            for obj in list_objects(cluster, kind, namespace):
                source.add(obj)
    return source


def read_named(cluster: Cluster, kind: str, namespace: str, names) -> Dict[str, Obj]:
    """name -> object, for those of `names` that exist. A GET each (what RBAC can grant by
    resourceNames), or for many names (refs.lists_named) one LIST of the kind, keeping only the
    named ones; a LIST the user may not make (403) falls back to the GETs, several at once."""
    from kubectl_dlm.refs import lists_named

    wanted = sorted(set(names))
    if lists_named(len(wanted)):
        try:
            listed = list_objects(cluster, kind, namespace)
        except Forbidden:
            pass  # granted by name only
        else:
            keep = set(wanted)
            return {meta(o)["name"]: o for o in listed if meta(o).get("name") in keep}
    found = side_by_side(lambda name: get(cluster, kind, namespace, name), wanted)
    return {name: obj for name, obj in zip(wanted, found) if obj is not None}


def side_by_side(request: Callable[[Any], Any], items: List[Any]) -> List[Any]:
    """request(item) for each item, refs.NAMED_WORKERS in flight at once (the round trips overlap;
    the client's connection pool keeps about this many), answers in the order of items."""
    if len(items) < 2:
        return [request(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # not imported by a render of one VM
    from kubectl_dlm.refs import NAMED_WORKERS

    with ThreadPoolExecutor(min(NAMED_WORKERS, len(items))) as pool:
        return list(pool.map(request, items))


def read_target(cluster: Cluster) -> TargetInfo:
    storage_classes = list_objects(cluster, "StorageClass")
    classes = frozenset(meta(sc).get("name") for sc in storage_classes)
    kubevirts = list_objects(cluster, "KubeVirt")
    addresses: tuple = ()
    if kubevirts:
        addresses = tuple((kubevirts[0].get("status") or {}).get("synchronizationAddresses") or ())
    overhead, per_class, cdi_error = read_cdi_overhead(cluster)
    return TargetInfo(storage_classes=classes, sync_addresses=addresses, kubevirt_found=bool(kubevirts),
                      default_storage_class=default_storage_class(storage_classes), fs_overhead_global=overhead,
                      fs_overhead_classes=per_class, cdi_error=cdi_error)


DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def default_storage_class(classes: List[Obj]) -> Optional[str]:
    """The class CDI falls back to: the newest default one, then by name (CDI pkg/controller/common/util.go:600-625)."""
    defaults = [c for c in classes if (meta(c).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    defaults.sort(key=lambda c: meta(c).get("name", ""))
    defaults.sort(key=lambda c: meta(c).get("creationTimestamp", ""), reverse=True)
    return meta(defaults[0]).get("name") if defaults else None


def read_cdi_overhead(cluster: Cluster):
    """(global, ((class, overhead), ...), "" or why not) from CDIConfig `config` status.filesystemOverhead,
    which CDI's importer reads (CDI pkg/controller/common/util.go:628-675). Unreachable: raised."""
    try:
        config = get(cluster, "CDIConfig", None, "config")
    except ClusterError as exc:
        if exc.message.startswith("cannot reach"):
            raise
        return None, (), exc.message
    except DlmError as exc:
        return None, (), exc.message
    if config is None:
        return None, (), f"no CDIConfig config on {cluster.describe()}"
    overhead = (config.get("status") or {}).get("filesystemOverhead") or {}
    try:
        per_class = tuple(sorted((k, float(v)) for k, v in (overhead.get("storageClass") or {}).items()))
        return (float(overhead["global"]) if overhead.get("global") is not None else None), per_class, \
            ("" if overhead.get("global") is not None else "CDIConfig config has no status.filesystemOverhead.global yet")
    except ValueError:
        return None, (), f"CDIConfig config has an unreadable status.filesystemOverhead: {overhead}"


# --- small generic helpers (check, trust) ------------------------------------------------------

def get_path(cluster: Cluster, path: str, verb: str) -> Optional[Obj]:
    """GET any API path (e.g. cluster-scoped kinds outside KINDS); None when it is not found."""
    try:
        return call(cluster, "GET", path, verb)
    except NotFound:
        return None


def replace(cluster: Cluster, obj: Obj) -> Obj:
    """Update (PUT) the whole object. Its metadata.resourceVersion makes the write conditional: a
    concurrent change gives Conflict, so a read-modify-write never loses someone else's write.
    (Sent as application/yaml, of which JSON is a subset: the client passes a str body through as is.)"""
    m = meta(obj)
    return call(cluster, "PUT", _path(obj["kind"], m.get("namespace"), m["name"]),
                f"update {obj['kind']} {display_name(m.get('namespace'), m['name'])}", body=obj, content_type="application/yaml")


def access_reviews(cluster: Cluster, asks: List[tuple]) -> List[tuple]:
    """access_review of each ask (verb, resource, group, namespace, name), in order. The first is
    asked alone: when the server cannot answer it (no authorization API, reviews forbidden) the rest
    would not be answered either, and only that one answer is returned. The others are asked
    side by side: a migrate's checks ask about 90, one after the other they were most of the second
    before its first apply (a trace of the one-VM benchmark, issue 10)."""
    if not asks:
        return []
    first = access_review(cluster, *asks[0])
    if first[0] is None:
        return [first]
    return [first, *side_by_side(lambda ask: access_review(cluster, *ask), asks[1:])]


def access_review(cluster: Cluster, verb: str, resource: str, group: str = "", namespace: str = "",
                  name: str = "") -> tuple:
    """May the current user do `verb` on `resource`? SelfSubjectAccessReview.

    Returns (True|False, reason), or (None, why) when the server cannot answer (no authorization
    API, creating the review is forbidden, ...): the caller must say "could not verify", not pass.
    """
    asked = (verb, resource, group, namespace, name)
    if asked in cluster.reviews:
        return cluster.reviews[asked]
    resource, _, subresource = resource.partition("/")  # "pods/proxy": the review names the subresource apart
    attributes = {"verb": verb, "resource": resource, "group": group}
    if subresource:
        attributes["subresource"] = subresource
    if namespace:
        attributes["namespace"] = namespace
    if name:
        attributes["name"] = name
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    try:
        result = call(cluster, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                      "create SelfSubjectAccessReview", body=body, content_type="application/yaml", attempts=2)
    except DlmError as exc:
        return None, exc.message
    status = (result or {}).get("status") or {}
    if "allowed" not in status:
        return None, f"{cluster.describe()} returned a SelfSubjectAccessReview without a decision"
    answer = bool(status["allowed"]), status.get("reason") or status.get("evaluationError") or ""
    cluster.reviews[asked] = answer
    return answer
