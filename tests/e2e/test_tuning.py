"""Per-migration tuning end to end on the KubeVirt tier: the MigrationPolicy goes through KubeVirt's
own CRD and migration-policy webhook, selects the receiving VMI, is resolved by the real migration
controller, is removed when the migration ends, by `cancel` and by `cleanup`, and `check` says when
KubeVirt would not use it. The webhook's verdicts and the resolved configuration at the hand-off:
tests/kubevirt/test_tuning.py."""

from __future__ import annotations

import json
import time

import pytest

from kubectl_dlm import errors
from kubectl_dlm.model import LABEL_MIGRATION_ID, LABEL_VM
from tests.e2e.conftest import start_vm
from tests.harness.apiserver import ApiError

FOLLOW = ("--sync-timeout", "60", "--timeout", "120", "-o", "plain")
POLICIES = "/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies"
TUNE = ("--bandwidth", "64Mi", "--allow-post-copy", "--completion-timeout-per-gib", "300")


def policies(clusters, name="target"):
    return {p["metadata"]["name"]: p for p in clusters.by_name(name).request("GET", POLICIES)["items"]}


@pytest.fixture
def no_policies_left(kubevirt):
    """Every test here leaves the cluster-scoped MigrationPolicies as it found them."""
    clusters = kubevirt.clusters
    before = {c.name: set(policies(clusters, c.name)) for c in clusters}
    yield
    for c in clusters:
        for name in set(policies(clusters, c.name)) - before[c.name]:
            c.request("DELETE", f"{POLICIES}/{name}")


def test_bundle_with_tuning_applied_then_the_policy_is_gone(tmp_path, kubevirt, dlm,
                                                            no_policies_left):
    clusters = kubevirt.clusters
    from ruamel.yaml import YAML

    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    out_dir = tmp_path / "bundle"
    code, out, err = dlm("render", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--output-dir", str(out_dir), *TUNE)
    assert code == errors.OK, out + err
    index = YAML(typ="safe", pure=True).load((out_dir / "dlm-bundle.yaml").read_text())
    migration_id = index["vms"][0]["migrationID"]
    name = f"kubectl-dlm-{migration_id}"
    assert f"1-prepare-target/migrationpolicy-{name}.yaml" in index["phases"][0]["files"]
    assert "## Migration tuning" in (out_dir / "README.md").read_text()

    code, out, err = dlm("apply", "-f", str(out_dir), *FOLLOW)
    assert code == errors.OK, out + err
    assert f"applied MigrationPolicy {name} on target" in out  # the API server took it (CRD schema)
    assert f"deleted MigrationPolicy {name} on target (the migration is over)" in out
    assert name not in policies(clusters)
    # the receiving VMI carried the labels the policy selected
    labels = kubevirt.get("target", "vmi", ns, "vm1")["metadata"]["labels"]
    assert labels[LABEL_MIGRATION_ID] == migration_id and labels[LABEL_VM] == "vm1"


def test_cleanup_removes_the_policy_of_a_prepared_attempt(tmp_path, kubevirt, dlm,
                                                          no_policies_left):
    """What `kubectl apply -k 1-prepare-target` leaves when the migration never starts."""
    clusters = kubevirt.clusters
    from kubectl_dlm import kube

    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    code, out, err = dlm("render", "vm1", "--context", "source", "-n", ns, "--to-context", "target", "-o", "json",
                         "--phase", "prepare", *TUNE)
    assert code == errors.OK, out + err
    target = kube.connect(str(clusters.kubeconfig), "target")
    for obj in json.loads(out)["items"]:
        kube.apply(target, obj)
    [name] = [o["metadata"]["name"] for o in json.loads(out)["items"] if o["kind"] == "MigrationPolicy"]
    assert name in policies(clusters)
    code, out, err = dlm("cleanup", "vm1", "--context", "source", "-n", ns, "--to-context", "target")
    assert code == errors.OK, out + err
    assert f"MigrationPolicy {name} on target (target)" in out
    assert name not in policies(clusters)


def test_check_says_which_policy_kubevirt_would_choose(kubevirt, dlm, no_policies_left):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    args = ("check", "vm1", "--context", "source", "-n", ns, "--to-context", "target", "-o", "json", *TUNE)

    def rows(*extra):
        code, out, err = dlm(*args, *extra)
        return code, {r["name"]: r for r in json.loads(out)["checks"] if r["name"] in (
            "migration-policy-api", "migration-policy", "max-downtime")}

    code, found = rows()
    assert found["migration-policy-api"]["status"] == "pass"
    assert found["migration-policy"]["status"] == "pass", found
    # the harness's KubeVirt CR enables DecentralizedLiveMigration only
    code, found = rows("--max-downtime", "300ms")
    assert code == errors.REFUSED and found["max-downtime"]["status"] == "fail"
    assert "MigrationStallDetection" in found["max-downtime"]["reason"]
    # a policy matching 2 labels of the VMI and the namespace's name, like ours: a tie, so the first name wins
    # (migrationpolicy.go:62-81): "aa-rival-..." before "kubectl-dlm-..."
    vm = kubevirt.get("source", "vm", ns, "vm1")
    template_labels = ((vm["spec"]["template"].get("metadata") or {}).get("labels") or {})
    assert template_labels, "tier.vm_manifest gives the template labels"
    key, value = sorted(template_labels.items())[0]
    rival = {"apiVersion": "migrations.kubevirt.io/v1alpha1", "kind": "MigrationPolicy",
             "metadata": {"name": f"aa-rival-{ns}"},
             "spec": {"selectors": {"virtualMachineInstanceSelector": {key: value, LABEL_VM: "vm1"},
                                    "namespaceSelector": {"kubernetes.io/metadata.name": ns}},
                      "bandwidthPerMigration": "1Mi"}}
    clusters.by_name("target").request("POST", POLICIES, rival)
    code, found = rows()
    assert code == errors.REFUSED and found["migration-policy"]["status"] == "fail"
    assert f"KubeVirt would apply MigrationPolicy aa-rival-{ns} instead of ours" in found["migration-policy"]["reason"]


def test_check_without_the_crd_is_a_clear_failure(kubevirt, dlm):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    target = clusters.by_name("target")
    crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/migrationpolicies.migrations.kubevirt.io"
    kubevirts = target.request("GET", crd)   # KubeVirt's own (its install strategy), put back after
    kubevirts = {k: v for k, v in kubevirts.items() if k != "status"}
    kubevirts["metadata"] = {k: v for k, v in kubevirts["metadata"].items() if k in ("name", "labels", "annotations")}
    target.request("DELETE", crd)
    try:
        for _ in range(100):  # until the API is no longer served
            try:
                target.request("GET", POLICIES)
            except ApiError as exc:
                if exc.status == 404:
                    break
            time.sleep(0.1)
        code, out, err = dlm("check", "vm1", "--context", "source", "-n", ns, "--to-context", "target", "-o", "json",
                             "--bandwidth", "64Mi")
        assert code == errors.REFUSED, out + err
        [row] = [r for r in json.loads(out)["checks"] if r["name"] == "migration-policy-api"]
        assert row["status"] == "fail"
        assert "serves no migrationpolicies.migrations.kubevirt.io" in row["reason"]
    finally:
        for _ in range(300):  # the CRD goes once its objects are cleaned up; then it can be created again
            try:
                target.request("GET", crd)
            except ApiError as exc:
                if exc.status == 404:
                    break
            time.sleep(0.1)
        target.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", kubevirts)
        for _ in range(100):  # served again before the next test (virt-controller's informer relists)
            try:
                target.request("GET", POLICIES)
                break
            except ApiError:
                time.sleep(0.1)


def test_status_shows_what_kubevirt_resolved(kubevirt, dlm, no_policies_left):
    """At the hand-off the real migration controller writes the policy it chose and the configuration
    it resolved into the receiving VMI's migrationState (migration.go:2629-2643 @v1.9.0); `status`
    shows them after the migration, when the policy itself is gone."""
    clusters = kubevirt.clusters
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, *TUNE, *FOLLOW)
    assert code == errors.OK, out + err
    [receiving] = [v for v in kubevirt.list("source", "vmim", dst) if v["spec"].get("receive")]
    name = f"kubectl-dlm-{receiving['spec']['receive']['migrationID']}"
    assert name not in policies(clusters, "source")
    code, out, err = dlm("status", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, "-o", "json")
    assert code == errors.OK, out + err
    [row] = json.loads(out)
    # ours over the KubeVirt CR's defaults; allowWorkloadDisruption follows allowPostCopy (migrationpolicy.go:130-134)
    assert row["migration_policy"] == name, row
    config = row["migration_configuration"]
    assert (config["bandwidthPerMigration"], config["allowPostCopy"], config["allowWorkloadDisruption"],
            config["completionTimeoutPerGiB"], config["progressTimeout"]) == ("64Mi", True, True, 300, 150), config
    assert config == kubevirt.get("source", "vmi", dst, "vm1")["status"]["migrationState"]["migrationConfiguration"]
    code, out, err = dlm("status", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, "-o", "wide")
    assert (f"KubeVirt applies policy {name}: bandwidth 64Mi/s, post-copy on, workload disruption on, "
            "auto-converge off, completion timeout/GiB 300s, max downtime 900ms, progress timeout 150s") in out, out
    assert "blocked" not in out   # KubeVirt leaves a stale blocked condition on the target VMIM (follow.assess)


def test_cleanup_after_a_success_removes_only_a_leftover_policy(kubevirt, dlm,
                                                                no_policies_left):
    """Say `migrate` was killed before it deleted the policy: cleanup removes it and leaves the moved VM."""
    clusters = kubevirt.clusters
    from kubectl_dlm import kube

    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    where = ("--context", "source", "-n", src, "--to-namespace", dst)
    code, out, err = dlm("render", "vm1", *where, "-o", "json", "--phase", "prepare", *TUNE)
    assert code == errors.OK, out + err
    [leftover] = [o for o in json.loads(out)["items"] if o["kind"] == "MigrationPolicy"]
    code, out, err = dlm("migrate", "vm1", *where, *TUNE, *FOLLOW)
    assert code == errors.OK, out + err
    assert leftover["metadata"]["name"] not in policies(clusters, "source")
    kube.apply(kube.connect(str(clusters.kubeconfig), "source"), leftover)   # KubeVirt's webhook admits it
    code, out, err = dlm("cleanup", "vm1", *where)
    assert code == errors.OK, out + err
    assert out.splitlines() == ["vm1: deleted:", f"  MigrationPolicy {leftover['metadata']['name']} on source (target)"]
    assert leftover["metadata"]["name"] not in policies(clusters, "source")
    assert kubevirt.get("source", "vmi", dst, "vm1")["status"]["phase"] == "Running"
    code, out, err = dlm("cleanup", "vm1", *where)  # nothing of ours left but the running VM: refused as before
    assert code == errors.REFUSED and "the migration succeeded" in err


def test_timed_out_run_keeps_the_policy_until_cancel(kubevirt, dlm, no_policies_left):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    kubevirt.faults.block_sync("target", "refused")
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *TUNE,
                         "--sync-timeout", "5", "--timeout", "60", "-o", "plain")
    assert code == errors.TIMED_OUT, out + err
    ours = [n for n, p in policies(clusters).items() if p["metadata"]["labels"].get(LABEL_VM) == "vm1"
            and p["spec"]["selectors"]["namespaceSelector"]["kubernetes.io/metadata.name"] == ns]
    assert len(ours) == 1  # the migration goes on: its tuning stays
    code, out, err = dlm("cancel", "vm1", "--context", "source", "-n", ns, "--to-context", "target")
    assert code == errors.OK, out + err
    assert f"target/MigrationPolicy {ours[0]}" in out
    assert ours[0] not in policies(clusters)
