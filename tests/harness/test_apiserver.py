"""The test clusters behave like real ones where kubectl-dlm depends on it."""
from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from .clusters import KUBEVIRT_NS, kubectl_path

APPLY = "application/apply-patch+yaml"
VM = ("kubevirt.io", "v1", "virtualmachines")


def vm(name: str, ns: str, run_strategy: str = "Halted") -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name, "namespace": ns},
            "spec": {"runStrategy": run_strategy, "template": {"spec": {"domain": {"devices": {}}}}}}


@pytest.fixture(scope="module")
def source_api(clusters):
    return clusters.source.api_client()


@pytest.fixture
def kubectl(clusters, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "kube-cache"  # not the user's ~/.kube/cache

    def run(*args: str, context: str = "source", check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([kubectl_path(), "--kubeconfig", str(clusters.kubeconfig), "--context", context, *args],
                              capture_output=True, text=True, check=check, env={**os.environ, "KUBECACHEDIR": str(cache)})
    return run


def test_ssa_create_then_update_records_managed_fields(source_api, namespaces):
    ns = namespaces()
    co = client.CustomObjectsApi(source_api)
    # kubernetes 37: the server answers 201 on create, which the client maps to None. Re-read.
    created = co.patch_namespaced_custom_object(*VM[:2], ns, VM[2], "a", vm("a", ns), field_manager="kubectl-dlm",
                                                _content_type=APPLY)
    assert created is None
    got = co.get_namespaced_custom_object(*VM[:2], ns, VM[2], "a")
    assert [(m["manager"], m["operation"]) for m in got["metadata"]["managedFields"]] == [("kubectl-dlm", "Apply")]
    updated = co.patch_namespaced_custom_object(*VM[:2], ns, VM[2], "a", vm("a", ns, "Always"),
                                                field_manager="kubectl-dlm", _content_type=APPLY)
    assert updated["spec"]["runStrategy"] == "Always" and updated["metadata"]["generation"] == 2
    # another manager changing an owned field conflicts unless forced
    with pytest.raises(ApiException) as e:
        co.patch_namespaced_custom_object(*VM[:2], ns, VM[2], "a", vm("a", ns, "Manual"), field_manager="other",
                                          _content_type=APPLY)
    assert e.value.status == 409


def test_schema_is_enforced(source_api, namespaces):
    ns = namespaces()
    body = vm("bad", ns)
    del body["spec"]["template"]
    with pytest.raises(ApiException) as e:
        client.CustomObjectsApi(source_api).create_namespaced_custom_object(*VM[:2], ns, VM[2], body)
    assert e.value.status == 422 and "spec.template" in e.value.body


def test_json_patch_replaces_a_missing_key_as_kube_apiserver_does(clusters, namespaces):
    # kube-apiserver applies JSON patches with gopkg.in/evanphx/json-patch.v4, where `replace` of a
    # missing key adds it; KubeVirt's virt-controller adds its first finalizer that way
    # (kubevirt v1.9.0 pkg/virt-controller/watch/vm/vm.go:2307). See tests/infra/build.sh.
    ns = namespaces()
    path = f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines"
    clusters.source.request("POST", path, vm("a", ns))
    patched = clusters.source.request("PATCH", f"{path}/a", [
        {"op": "test", "path": "/metadata/finalizers", "value": None},
        {"op": "replace", "path": "/metadata/finalizers", "value": ["example.com/f"]}],
        content_type="application/json-patch+json")
    assert patched["metadata"]["finalizers"] == ["example.com/f"]


def test_dry_run_changes_nothing(source_api, namespaces):
    ns = namespaces()
    co = client.CustomObjectsApi(source_api)
    co.patch_namespaced_custom_object(*VM[:2], ns, VM[2], "ghost", vm("ghost", ns), field_manager="kubectl-dlm",
                                      _content_type=APPLY, dry_run="All")
    assert co.list_namespaced_custom_object(*VM[:2], ns, VM[2])["items"] == []
    co.create_namespaced_custom_object(*VM[:2], ns, VM[2], vm("a", ns))
    before = co.get_namespaced_custom_object(*VM[:2], ns, VM[2], "a")
    out = co.patch_namespaced_custom_object(*VM[:2], ns, VM[2], "a", vm("a", ns, "Always"),
                                            field_manager="kubectl-dlm", _content_type=APPLY, dry_run="All", force=True)
    assert out["spec"]["runStrategy"] == "Always"
    assert co.get_namespaced_custom_object(*VM[:2], ns, VM[2], "a") == before


def test_status_subresource_is_split(source_api, namespaces):
    ns = namespaces()
    co = client.CustomObjectsApi(source_api)
    co.create_namespaced_custom_object(*VM[:2], ns, VM[2], vm("a", ns))
    # the main resource ignores .status ...
    co.patch_namespaced_custom_object(*VM[:2], ns, VM[2], "a", {"status": {"printableStatus": "Running"}})
    assert "printableStatus" not in co.get_namespaced_custom_object(*VM[:2], ns, VM[2], "a").get("status", {})
    # ... and /status ignores .spec
    co.patch_namespaced_custom_object_status(*VM[:2], ns, VM[2], "a", {"status": {"printableStatus": "Running"},
                                                                        "spec": {"runStrategy": "Always"}})
    got = co.get_namespaced_custom_object(*VM[:2], ns, VM[2], "a")
    assert got["status"]["printableStatus"] == "Running" and got["spec"]["runStrategy"] == "Halted"
    # the same split on a built-in kind
    core = client.CoreV1Api(source_api)
    core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "p"}, "spec": {"storageClassName": "standard"}})
    core.patch_namespaced_persistent_volume_claim_status("p", ns, {"status": {"phase": "Bound"}})
    core.patch_namespaced_persistent_volume_claim("p", ns, {"status": {"phase": "Lost"}})
    assert core.read_namespaced_persistent_volume_claim("p", ns).status.phase == "Bound"


def test_watch_from_resource_version(source_api, namespaces):
    ns = namespaces()
    co = client.CustomObjectsApi(source_api)
    co.create_namespaced_custom_object(*VM[:2], ns, VM[2], vm("a", ns))
    rv = co.list_namespaced_custom_object(*VM[:2], ns, VM[2])["metadata"]["resourceVersion"]
    seen, started = [], threading.Event()

    def follow():
        started.set()
        for ev in watch.Watch().stream(co.list_namespaced_custom_object, *VM[:2], ns, VM[2], resource_version=rv,
                                       timeout_seconds=10):
            seen.append((ev["type"], ev["object"].get("status", {}).get("printableStatus")))
            if ev["type"] == "DELETED":
                return

    t = threading.Thread(target=follow)
    t.start()
    started.wait()
    co.patch_namespaced_custom_object_status(*VM[:2], ns, VM[2], "a", {"status": {"printableStatus": "Running"}})
    co.delete_namespaced_custom_object(*VM[:2], ns, VM[2], "a")
    t.join(15)
    # no replay of the object as ADDED: the watch starts after rv
    assert seen == [("MODIFIED", "Running"), ("DELETED", "Running")]


def test_watch_from_too_old_resource_version_is_gone(source_api, namespaces):
    ns = namespaces()
    # A CRD's watch cache starts after the CRD was created, so revision 1 is older than it holds.
    co = client.CustomObjectsApi(source_api)
    with pytest.raises(ApiException) as e:
        for _ in watch.Watch().stream(co.list_namespaced_custom_object, *VM[:2], ns, VM[2],
                                      resource_version="1", timeout_seconds=5):
            pass
    assert e.value.status == 410


def test_restart_apiserver_keeps_data_and_port(clusters, namespaces):
    target = clusters.target
    ns = namespaces("target")
    core = client.CoreV1Api(target.api_client())
    core.create_namespaced_config_map(ns, {"metadata": {"name": "keep"}, "data": {"k": "v"}})
    server = target.server
    target.restart_apiserver(down_seconds=0.2)
    assert target.server == server
    assert core.read_namespaced_config_map("keep", ns).data == {"k": "v"}  # the old client reconnects


def test_kubeconfig_has_one_context_per_cluster(clusters, kubectl):
    contexts = kubectl("config", "get-contexts", "-o", "name").stdout.split()
    assert sorted(contexts) == ["source", "target"]
    for c in clusters:
        kv = json.loads(kubectl("get", "kv", "-n", KUBEVIRT_NS, "kubevirt", "-o", "json", context=c.context).stdout)
        assert kv["status"]["synchronizationAddresses"] == [c.sync_address]
        assert kv["status"]["phase"] == "Deployed" and kv["status"]["observedKubeVirtVersion"] == "v1.9.0"
        assert kv["spec"]["configuration"]["developerConfiguration"]["featureGates"] == ["DecentralizedLiveMigration"]


def test_kubectl_get_short_names(clusters, namespaces, kubectl):
    ns = namespaces()
    client.CustomObjectsApi(clusters.source.api_client()).create_namespaced_custom_object(*VM[:2], ns, VM[2], vm("a", ns))
    assert kubectl("get", "vm", "-n", ns, "-o", "name").stdout.split() == ["virtualmachine.kubevirt.io/a"]
    for short in ("vm", "vmi", "vmim", "kv", "dv", "vmf", "vmp", "vmcf", "vmcp", "net-attach-def", "sc", "pvc",
                  "controllerrevisions", "po", "ev", "no", "ep", "sa", "quota", "limits", "pv", "pdb", "ing",
                  "leases", "endpointslices", "mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        kubectl("get", short, "-A")
    assert "kubevirt   " in kubectl("get", "kv", "-n", KUBEVIRT_NS).stdout
    assert kubectl("auth", "can-i", "create", "vm").stdout.strip() == "yes"


def test_kubectl_server_side_apply_and_dry_run(namespaces, kubectl, tmp_path):
    ns = namespaces()
    f = tmp_path / "vm.json"
    f.write_text(json.dumps(vm("a", ns)))
    out = kubectl("apply", "--server-side", "--dry-run=server", "-f", str(f)).stdout
    assert "serverside-applied (server dry run)" in out
    assert kubectl("get", "vm", "-n", ns, "-o", "name").stdout == ""
    kubectl("apply", "--server-side", "--field-manager", "kubectl-dlm", "-f", str(f))
    assert kubectl("get", "vm", "-n", ns, "a", "-o", "jsonpath={.spec.runStrategy}").stdout == "Halted"


def test_cluster_setup(clusters):
    for c in clusters:
        core, storage = client.CoreV1Api(c.api_client()), client.StorageV1Api(c.api_client())
        classes = {sc.metadata.name: sc for sc in storage.list_storage_class().items}
        assert set(classes) == set(c.storage_classes)
        default = [n for n, sc in classes.items()
                   if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
        assert default == ["standard"]
        # Other tests may add the peer's CA (that is what DLM trust does); the own CA stays first.
        bundle = core.read_namespaced_config_map("kubevirt-ca", KUBEVIRT_NS).data["ca-bundle"]
        assert bundle.startswith(c.kubevirt_ca_pem) and c.kubevirt_ca_pem.startswith("-----BEGIN CERTIFICATE-----")
        assert "ca-bundle" in core.read_namespaced_config_map("kubevirt-external-ca", KUBEVIRT_NS).data
    assert set(clusters.source.storage_classes) ^ set(clusters.target.storage_classes) == {"local", "ceph-rbd"}
    assert clusters.source.kubevirt_ca_pem != clusters.target.kubevirt_ca_pem


def test_dynamic_client_and_builtin_kinds(source_api, namespaces):
    ns = namespaces()
    dyn = dynamic.DynamicClient(source_api)
    assert dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachine").preferred
    nad = dyn.resources.get(api_version="k8s.cni.cncf.io/v1", kind="NetworkAttachmentDefinition")
    nad.server_side_apply({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                           "metadata": {"name": "br"}, "spec": {"config": "{}"}}, namespace=ns, field_manager="kubectl-dlm")
    revisions = dyn.resources.get(api_version="apps/v1", kind="ControllerRevision")
    revisions.create({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "it-1"},
                      "revision": 1, "data": {"kind": "VirtualMachineInstancetype"}}, namespace=ns)
    assert revisions.get(name="it-1", namespace=ns).data.kind == "VirtualMachineInstancetype"
    assert client.CoreV1Api(source_api).create_namespaced_pod(
        ns, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}).status.phase == "Pending"


def test_namespaces_are_fresh_and_cleaned_up(clusters, namespaces):
    ns = namespaces("source", "target")
    assert ns.startswith("t-test-namespaces-are-fresh")
    assert namespaces() != ns
    for c in clusters:
        assert c.request("GET", f"/api/v1/namespaces/{ns}")["status"]["phase"] == "Active"
    # deleting a namespace takes its contents (and finalizers holding them) with it
    source = clusters.source
    body = vm("a", ns)
    body["metadata"]["finalizers"] = ["example.com/hold"]
    source.request("POST", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines", body)
    source.delete_namespace(ns)
    assert source.request("GET", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines")["items"] == []


def test_version(source_api):
    # kubectl and the Python client (which asks for "/version/") both get a parseable version
    assert client.VersionApi(source_api).get_code().git_version.startswith("v1.")


def test_pod_binding_binds_once(source_api, namespaces):
    """pods/binding as Kubernetes' BindingREST: sets spec.nodeName and PodScheduled, then conflicts."""
    ns = namespaces()
    core = client.CoreV1Api(source_api)
    core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})

    def bind(node: str, pod: str = "p", legacy: bool = False):
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        if legacy:  # the older /bindings collection the same code serves
            return core.create_namespaced_binding(ns, body, _preload_content=False)
        return core.create_namespaced_pod_binding(pod, ns, body, _preload_content=False)
    assert bind("node-a").status == 201
    pod = core.read_namespaced_pod("p", ns)
    assert pod.spec.node_name == "node-a"
    assert [(c.type, c.status) for c in pod.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(ApiException) as e:
        bind("node-b")
    assert e.value.status == 409 and 'pod p is already assigned to node \\"node-a\\"' in e.value.body
    with pytest.raises(ApiException) as e:
        bind("node-b", legacy=True)
    assert e.value.status == 409
    assert core.read_namespaced_pod("p", ns).spec.node_name == "node-a"
    with pytest.raises(ApiException) as e:
        bind("node-a", pod="missing")
    assert e.value.status == 404
    # the kubelet and KubeVirt's node controller find a node's pods by field selector
    def names(selector: str) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(ns, field_selector=selector).items]
    assert names("spec.nodeName=node-a") == ["p"] and names("spec.nodeName=node-b") == []
    assert names("status.phase=Pending,metadata.name=p") == ["p"]
    with pytest.raises(ApiException) as e:
        names("spec.bogus=x")
    assert e.value.status == 400


def test_kubevirt_infrastructure_kinds_are_served(source_api, namespaces):
    """Kinds KubeVirt's controllers watch and write: create, get, and watch from a list's resourceVersion."""
    ns = namespaces()
    coord, core, disc = client.CoordinationV1Api(source_api), client.CoreV1Api(source_api), client.DiscoveryV1Api(source_api)
    node = f"node-{ns}"
    coord.create_namespaced_lease(ns, {"metadata": {"name": "virt-controller"}, "spec": {"holderIdentity": "a"}})
    core.create_node({"metadata": {"name": node, "labels": {"kubevirt.io/schedulable": "true"}}})
    try:
        disc.create_namespaced_endpoint_slice(ns, {"metadata": {"name": "s-1", "labels": {"kubernetes.io/service-name": "s"}},
                                                   "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}]})
        assert coord.read_namespaced_lease("virt-controller", ns).spec.holder_identity == "a"
        assert core.read_node(node).metadata.labels == {"kubevirt.io/schedulable": "true"}
        assert disc.read_namespaced_endpoint_slice("s-1", ns).endpoints[0].addresses == ["127.0.0.1"]
        # node status is a subresource, as on a real cluster
        core.patch_node_status(node, {"status": {"allocatable": {"devices.kubevirt.io/kvm": "1k"}}})
        core.patch_node(node, {"status": {"allocatable": {"cpu": "1"}}})
        assert core.read_node(node).status.allocatable == {"devices.kubevirt.io/kvm": "1k"}
        for list_fn, args, change in (
                (coord.list_namespaced_lease, (ns,),
                 lambda: coord.patch_namespaced_lease("virt-controller", ns, {"spec": {"holderIdentity": "b"}})),
                (core.list_node, (), lambda: core.patch_node(node, {"metadata": {"labels": {"x": "y"}}})),
                (disc.list_namespaced_endpoint_slice, (ns,),
                 lambda: disc.delete_namespaced_endpoint_slice("s-1", ns))):
            rv = list_fn(*args).metadata.resource_version
            change()
            events = watch.Watch().stream(list_fn, *args, resource_version=rv, timeout_seconds=5)
            ev = next(events)
            assert ev["type"] in ("MODIFIED", "DELETED"), ev["type"]
            events.close()
    finally:
        core.delete_node(node)


def test_extension_apiserver_authentication_is_published(clusters):
    """What kube-apiserver publishes for aggregated API servers; virt-api reads it at start."""
    c = clusters.source
    data = c.request("GET", "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")["data"]
    assert data["client-ca-file"] == c.api.ca_cert.read_text()
    assert data["requestheader-client-ca-file"] == c.api.front_proxy_ca.read_text()
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
