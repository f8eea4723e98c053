"""`kubectl dlm check` against the KubeVirt tier (tests/kubevirt: KubeVirt's own virt-api,
virt-controller and synchronization-controller): each check passing and failing on real objects,
with its exact message. (Every branch is unit-tested in test_checks.py.)"""

from __future__ import annotations

import copy
import json
import time
from typing import Dict, Tuple

import pytest

from kubectl_dlm import errors, pem, trust

pytest.importorskip("tests.kubevirt.tier", reason="the KubeVirt tier (tests/kubevirt) is not in this tree")

from tests.kubevirt.tier import vm_manifest  # noqa: E402
from tests.test_trust_cluster import own_ca, untrusted  # noqa: E402,F401  (untrusted: a fixture)

MAC = "02:d1:c0:00:00:01"   # the VM's own (a locally administered address), so the MAC rows have one to judge


def dv_vm(name: str = "vm1", run_strategy: str = "Always") -> dict:
    vm = vm_manifest(name, run_strategy, data_volume=True)
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = MAC
    return vm


def sync_address(kubevirt, cluster: str) -> str:
    """What the cluster's virt-operator publishes (the harness plays it: tests/harness/kubevirt.py)."""
    return kubevirt.get(cluster, "kubevirt", "kubevirt", "kubevirt")["status"]["synchronizationAddresses"][0]


ROW_NAMES = ("dlm-enabled", "kubevirt-version", "sync-address", "ca-trust", "ca-expiry", "permissions",
             "target-namespace", "vm-running", "live-migratable", "storage-live-migratable", "no-other-migration",
             "supported-volumes", "persistent-state", "storage-classes", "networks", "name-collisions",
             "mac-addresses", "referenced-objects", "copied-objects", "bundle", "placement",
             "kubevirt-fixes")


def check(cli, clusters, ns: str, *extra: str, vm: str = "vm1", to_namespace: str = ""):
    args = ["check", vm, "--kubeconfig", clusters.kubeconfig, "--context", "source", "-n", ns,
            "--to-context", "target", "-o", "json", *extra]
    if to_namespace:
        args += ["--to-namespace", to_namespace]
    result = cli(*args)
    assert result.code in (errors.OK, errors.REFUSED), result.stderr
    return result.code, json.loads(result.stdout)["checks"]


def rows(checks, status: str) -> Dict[Tuple[str, str], Tuple[str, str]]:
    return {(c["name"], c["scope"]): (c["reason"], c["fix"]) for c in checks if c["status"] == status}


def establish_trust(clusters) -> None:
    from kubectl_dlm import kube

    source = kube.connect(str(clusters.kubeconfig), "source")
    target = kube.connect(str(clusters.kubeconfig), "target")
    trust.ensure_trust(source, target, timeout=30)


def post(cluster, path: str, obj: dict) -> dict:
    return cluster.request("POST", path, obj)


def test_everything_passes_once_trusted(untrusted, kubevirt, cli):
    clusters = untrusted
    ns = kubevirt.namespaces("source", "target")
    kubevirt.run_vm("source", ns, dv_vm())
    mac = MAC
    establish_trust(clusters)

    code, checks = check(cli, clusters, ns)
    assert code == errors.OK
    assert [c["name"] for c in checks if c["status"] not in ("pass", "unknown")] == []
    assert sorted({c["name"] for c in checks}) == sorted(ROW_NAMES)
    # The test servers answer SelfSubjectAccessReview (allowed for the admin the tests use).
    assert rows(checks, "unknown") == {}
    # the tier's target Nodes (tests/kubevirt/nodes.py DEFAULT_NODES): none of them is the source node
    assert rows(checks, "pass")[("placement", f"vm {ns}/vm1")][0].startswith(
        "2 target node(s) can take the receiving pod (node03, node04), with ")
    passed = rows(checks, "pass")
    for role in ("source", "target"):
        reason = passed[("permissions", f"{role} namespace {ns} on {role}")][0]
        assert reason.startswith("you may do all ") and reason.endswith("(SelfSubjectAccessReview)")
    src, tgt = own_ca(clusters.source), own_ca(clusters.target)
    assert passed[("dlm-enabled", "cluster target (target)")][0] == \
        f"KubeVirt kubevirt/kubevirt publishes synchronization address {sync_address(kubevirt, 'target')}"
    assert passed[("kubevirt-version", "cluster source (source)")][0] == (
        "KubeVirt v1.9.0 supports decentralized live migration (the kubevirt-fixes row says which of its known DLM bugs "
        "matter for each VM)")
    assert passed[("sync-address", "cluster source (source)")][0] == \
        f"target dials {sync_address(kubevirt, 'source')}: looks routable (judged by the text only; nothing was dialled)"
    assert passed[("ca-trust", "target trusts source")][0] == \
        "target's kubevirt-ca holds all 2 of source's valid CA certificate(s)"
    assert passed[("ca-expiry", "kubevirt/kubevirt-ca on target")][0] == \
        f"2 valid certificate(s), the first expires {pem.format_time(min(src.not_after, tgt.not_after))}"
    assert passed[("target-namespace", "cluster target (target)")][0] == f"namespace {ns} exists"
    vm_scope = f"vm {ns}/vm1"
    assert passed[("vm-running", vm_scope)][0] == "its VirtualMachineInstance is Running"
    assert passed[("storage-live-migratable", vm_scope)][0] == "StorageLiveMigratable is True"
    assert passed[("name-collisions", vm_scope)][0] == "nothing on the target has the names the bundle creates"
    assert passed[("mac-addresses", vm_scope)][0] == f"no VM on the target uses {mac}"
    # CDI wrote the default class into the claim (renderPvcSpec: GetStorageClassByNameWithVirtFallback)
    assert passed[("storage-classes", vm_scope)][0] == \
        "every disk has a storage class on the target (vm1-disk: standard)"

    table = cli("check", "vm1", "--kubeconfig", clusters.kubeconfig, "--context", "source", "-n", ns,
                "--to-context", "target")
    assert table.code == errors.OK
    assert table.stdout.splitlines()[-1] == "0 failed, 0 warning(s), 0 could not be verified, 28 passed"


@pytest.fixture
def local_pv(kubevirt):
    """local_pv(ns): a local PV for the source's class `local` (kubernetes.io/no-provisioner), as an
    admin makes one, Available as the PV controller reports an unclaimed volume; deleted after the test."""
    made = []

    def make(ns: str) -> None:
        name = f"local-{ns}"[:63]
        kubevirt.request("source", "POST", "/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                     "storageClassName": "local", "persistentVolumeReclaimPolicy": "Retain",
                     "local": {"path": "/mnt/disks/vm1"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node01", "node02"]}]}]}}}})
        made.append(name)
        kubevirt.request("source", "PATCH", f"/api/v1/persistentvolumes/{name}/status",
                         {"status": {"phase": "Available"}}, content_type="application/merge-patch+json")
    yield make
    for name in made:
        kubevirt.request("source", "DELETE", f"/api/v1/persistentvolumes/{name}")


def test_every_problem_on_the_target_is_listed_at_once(untrusted, kubevirt, local_pv, cli):
    clusters = untrusted
    ns = kubevirt.namespaces("source", "target")
    elsewhere = kubevirt.namespaces("target")
    vm = dv_vm()
    vm["spec"]["dataVolumeTemplates"][0]["spec"]["storage"]["storageClassName"] = "local"
    tspec = vm["spec"]["template"]["spec"]
    tspec["networks"].append({"name": "storage", "multus": {"networkName": "storage-net"}})
    tspec["domain"]["devices"]["interfaces"].append({"name": "storage", "bridge": {}})
    tspec["volumes"] += [{"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "vm1-ci"}}},
                         {"name": "cfg", "configMap": {"name": "vm1-cfg"}}]
    tspec["domain"]["devices"]["disks"] += [{"name": "ci", "disk": {"bus": "virtio"}},
                                            {"name": "cfg", "disk": {"bus": "virtio"}}]
    ci_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vm1-ci"}, "type": "Opaque",
                 "data": {"userdata": "I2Nsb3VkLWNvbmZpZwo="}}
    local_pv(ns)   # class local has no provisioner: its claims bind to pre-made PVs only
    # the launcher pod mounts vm1-cfg (a real kubelet would not start it without): it is deleted
    # once the VM runs, as by someone cleaning up
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vm1-cfg"}, "data": {"a": "1"}}
    kubevirt.create("source", "configmap", ns, cfg)
    kubevirt.run_vm("source", ns, vm, secrets=[ci_secret])
    kubevirt.delete("source", "configmap", ns, "vm1-cfg")
    mac = MAC

    # On the target: a VM with the same name, a Secret with the same name and other data, and
    # a VM in another namespace using the source VM's MAC address (both halted).
    squatter = vm_manifest("vm1", "Halted", data_volume=True)
    kubevirt.create("target", "vm", ns, squatter)
    # its DataVolume (virt-controller, vm.go:3284-3286 @v1.9.0: also for a halted VM) and claim (CDI)
    # come a moment later: wait, so the row is stable
    for kind in ("dv", "pvc"):
        kubevirt.wait_for("target", kind, ns, "vm1-disk", None, 30, f"squatter's {kind}")
    other_secret = copy.deepcopy(ci_secret)
    other_secret["data"] = {"userdata": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogeAo="}
    post(clusters.target, f"/api/v1/namespaces/{ns}/secrets", other_secret)
    twin = vm_manifest("twin", "Halted")
    twin["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = mac
    kubevirt.create("target", "vm", elsewhere, twin)

    code, checks = check(cli, clusters, ns, "--connect-url", "127.0.0.1:9185")
    assert code == errors.REFUSED
    src, tgt = own_ca(clusters.source), own_ca(clusters.target)
    vm_scope = f"vm {ns}/vm1"
    failed = rows(checks, "fail")
    assert failed == {
        ("sync-address", "cluster target (target)"): (
            "127.0.0.1:9185 is loopback: the other cluster would dial itself",
            "pass a routable address with --connect-url, or configure a KubeVirt migration network "
            "(spec.configuration.migrations.network) that both clusters route"),
        ("ca-trust", "target trusts source"): (
            f"target's kubevirt-ca lacks 1 of source's 1 CA certificate(s): {src.describe()}",
            "kubectl dlm trust --context source --to-context target"),
        ("ca-trust", "source trusts target"): (
            f"source's kubevirt-ca lacks 1 of target's 1 CA certificate(s): {tgt.describe()}",
            "kubectl dlm trust --context source --to-context target"),
        ("storage-classes", vm_scope): (
            "storage class local (claim vm1-disk) does not exist on the target and is not mapped",
            "map it with --storage-class-map local=<class on the target>; the target has: ceph-rbd, fast-block, standard"),
        ("networks", vm_scope): (
            f"network storage: NetworkAttachmentDefinition {ns}/storage-net (not mapped) does not exist on the target",
            "create it on the target, or map it with --network-map storage-net=<namespace>/<name on the target>"),
        ("name-collisions", vm_scope): (
            f"VirtualMachine {ns}/vm1 already exists and is not part of this migration; "  # and its disk:
            f"DataVolume {ns}/vm1-disk already exists and is not part of this migration; "
            f"PersistentVolumeClaim {ns}/vm1-disk already exists and is not part of this migration",
            "delete or rename what is in the way, or choose another --to-namespace"),
        ("mac-addresses", vm_scope): (
            f"{mac} (interface default) is used by VirtualMachine {elsewhere}/twin",
            "give one of the VMs another MAC address (spec.template.spec.domain.devices.interfaces[].macAddress)"),
        ("referenced-objects", vm_scope): (
            "not found on the source: ConfigMap " + ns + "/vm1-cfg (volume cfg (configMap))",
            "create them on the source (the VM cannot restart without them either)"),
        ("copied-objects", vm_scope): (
            f"Secret {ns}/vm1-ci already exists on the target with different content (data.userdata)",
            "make the target's copy match or delete it (it is not overwritten); for Secrets you may instead keep "
            "the target's with --secrets reference"),
        ("bundle", vm_scope): (
            f"cannot be planned: ConfigMap {ns}/vm1-cfg, used by VirtualMachine {ns}/vm1 (volume cfg (configMap)), "
            "not found", "create it on the source first"),
    }
    assert "I2Nsb3VkLWNvbmZpZwo=" not in json.dumps(checks)  # a Secret value is never shown

    # The fixes the rows name make those rows pass.
    post(clusters.source, f"/api/v1/namespaces/{ns}/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vm1-cfg"}, "data": {"a": "1"}})
    post(clusters.target, f"/apis/k8s.cni.cncf.io/v1/namespaces/{elsewhere}/network-attachment-definitions",
         {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition", "metadata": {"name": "storage"},
          "spec": {"config": "{}"}})
    code, checks = check(cli, clusters, ns, "--storage-class-map", "local=ceph-rbd",
                         "--network-map", f"storage-net={elsewhere}/storage", "--secrets", "reference")
    passed = rows(checks, "pass")
    assert passed[("storage-classes", vm_scope)][0] == \
        "every disk has a storage class on the target (vm1-disk: local -> ceph-rbd)"
    assert passed[("networks", vm_scope)][0] == \
        f"every Multus network exists on the target (storage: {elsewhere}/storage)"
    assert passed[("referenced-objects", vm_scope)][0] == "all 2 referenced object(s) exist on the source"
    assert rows(checks, "warn")[("copied-objects", vm_scope)][0] == (
        f"Secret {ns}/vm1-ci on the target differs from the source's (data.userdata); the VM will use the target's")


def test_target_namespace_missing_and_vm_not_running(kubevirt, cli):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source")  # not on the target
    kubevirt.create("source", "vm", ns, dv_vm(run_strategy="Halted"))
    code, checks = check(cli, clusters, ns)
    assert code == errors.REFUSED
    vm_scope = f"vm {ns}/vm1"
    failed = rows(checks, "fail")
    assert failed[("target-namespace", "cluster target (target)")] == (
        f"namespace {ns} does not exist on the target", f"kubectl --context target create namespace {ns}")
    assert failed[("vm-running", vm_scope)] == (
        "it is not running (no VirtualMachineInstance); DLM moves running VMs only", f"start it: virtctl start vm1 -n {ns}")
    assert failed[("bundle", vm_scope)][0] == (
        f"cannot be planned: cannot migrate VirtualMachine {ns}/vm1: it is not running (no VirtualMachineInstance); "
        "DLM moves running VMs only")
    assert rows(checks, "unknown")[("live-migratable", vm_scope)][0] == "could not verify: the VM is not running"


def wait_until(predicate, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_dlm_gate_off_and_an_old_kubevirt(kubevirt, cli):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    kubevirt.run_vm("source", ns, dv_vm())
    kubevirt.faults.disable_feature_gate("target")   # as an admin does; put back after the test
    # virt-operator then removes the sync controller and publishes no address (core.go:812-814 @v1.9.0)
    assert not kubevirt.get("target", "kubevirt", "kubevirt", "kubevirt")["status"].get("synchronizationAddresses")
    status = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt/status"
    clusters.source.request("PATCH", status, {"status": {"observedKubeVirtVersion": "v1.7.1"}},
                            content_type="application/merge-patch+json")
    try:
        code, checks = check(cli, clusters, ns)
    finally:
        clusters.source.request("PATCH", status, {"status": {"observedKubeVirtVersion": "v1.9.0"}},
                                content_type="application/merge-patch+json")
    assert code == errors.REFUSED
    failed = rows(checks, "fail")
    assert failed[("dlm-enabled", "cluster target (target)")] == (
        "DLM is off: KubeVirt kubevirt/kubevirt lists DecentralizedLiveMigration in "
        "spec.configuration.developerConfiguration.disabledFeatureGates",
        "remove it from disabledFeatureGates: kubectl --context target -n kubevirt patch kubevirt kubevirt --type merge "
        "-p '{\"spec\":{\"configuration\":{\"developerConfiguration\":{\"disabledFeatureGates\":[]}}}}'")
    reason, fix = rows(checks, "warn")[("kubevirt-fixes", f"vm {ns}/vm1")]
    assert reason.startswith("KubeVirt v1.7.1 on source: a failure on one side is not propagated to the other")
    assert "KubeVirt v1.7.1 on source: no decentralizedMigrationBlocked condition" in reason
    assert "on target" not in reason  # v1.9.0 there
    assert fix == "upgrade KubeVirt on both clusters to v1.9.0 or later"
    assert rows(checks, "unknown")[("sync-address", "cluster target (target)")][0] == \
        "could not verify: no synchronization address is published (see dlm-enabled)"


def test_same_cluster_skips_trust_and_says_why(kubevirt, cli):
    clusters = kubevirt.clusters
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    vmi = kubevirt.run_vm("source", src, dv_vm())
    other = {"node01": "node02", "node02": "node01"}[vmi["status"]["nodeName"]]
    result = cli("check", "vm1", "--kubeconfig", clusters.kubeconfig, "--context", "source", "-n", src,
                 "--to-namespace", dst, "-o", "json")
    assert result.code == errors.OK, result.stdout + result.stderr
    checks = json.loads(result.stdout)["checks"]
    passed = rows(checks, "pass")
    # the receiving pod must avoid the source node (hostname NotIn, migration.go:913-935): one of two remains
    assert passed[("placement", f"vm {src}/vm1")][0].startswith(
        f"1 target node(s) can take the receiving pod ({other}), with ")
    assert passed[("ca-trust", "cluster source (source and target)")][0] == \
        "same cluster: no CA exchange is needed (one kubevirt-ca)"
    assert passed[("sync-address", "cluster source (source and target)")][0] == \
        "same cluster: its synchronization controller connects to itself"
    assert not [c for c in checks if c["name"] == "ca-expiry"]


def test_ca_about_to_expire_warns_and_is_exchanged_like_any_other(untrusted, kubevirt, cli, tmp_path):
    import datetime as dt

    from tests.test_pem import NOW, make_cert
    from tests.test_trust_cluster import bundle, set_bundle

    clusters = untrusted
    ns = kubevirt.namespaces("source", "target")
    kubevirt.run_vm("source", ns, dv_vm())
    soon_pem = make_cert(tmp_path, "/CN=kubevirt.io@rotating", not_after=NOW + dt.timedelta(hours=5))
    soon = pem.parse_bundle(soon_pem)[0]
    set_bundle(clusters.target, "kubevirt-ca", clusters.target.kubevirt_ca_pem + soon_pem)
    wait_until(lambda: soon.sha256 in {c.sha256 for c in pem.parse_bundle(bundle(clusters.target))})
    establish_trust(clusters)
    assert soon.sha256 in {c.sha256 for c in pem.parse_bundle(bundle(clusters.source))}

    code, checks = check(cli, clusters, ns)
    assert code == errors.OK
    assert rows(checks, "warn") == {("ca-expiry", "kubevirt/kubevirt-ca on target"): (
        f"expires within 24h: {soon.describe()}",
        "KubeVirt renews its CA before expiry; run `kubectl dlm trust --context source --to-context target` again "
        "after it has, `kubectl dlm migrate` re-posts trust right before it starts"),
        ("ca-expiry", "kubevirt/kubevirt-ca on source"): (
        f"expires within 24h: {soon.describe()}",
        "KubeVirt renews its CA before expiry; run `kubectl dlm trust --context source --to-context target` again "
        "after it has, `kubectl dlm migrate` re-posts trust right before it starts")}
