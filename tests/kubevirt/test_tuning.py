"""The tuning flags' MigrationPolicy against KubeVirt's own code (the KubeVirt tier): the real
migration controller chooses it and resolves this migration's configuration from it, the CRD the
standard tier installs is KubeVirt's, and KubeVirt's real migration-policy webhook judges what we
render (pkg/virt-api/webhooks/validating-webhook/admitters/migrationpolicy-admitter.go @v1.9.0;
registered for CREATE and UPDATE with sideEffects None, so it runs on a server-side dry run:
pkg/virt-operator/resource/generate/components/webhooks.go:859-879)."""
from __future__ import annotations

import json

from ruamel.yaml import YAML

from kubectl_dlm import errors
from tests.harness.clusters import HARNESS_CRDS
from tests.kubevirt import played
from tests.kubevirt.test_dlm_e2e import FOLLOW, assert_moved, dlm, dump, get, start_vm  # noqa: F401 (dlm: fixture)
from tests.kubevirt.test_live import vm_manifest

CRD = "migrationpolicies.migrations.kubevirt.io"


def test_the_standard_tiers_crd_is_the_one_kubevirt_installs(kubevirt_clusters):
    real = next(c for c in kubevirt_clusters.kubevirt["target"].manifests["customResourceDefinitions"]
                if c["metadata"]["name"] == CRD)
    ours = YAML(typ="safe", pure=True).load((HARNESS_CRDS / f"{CRD}.crd.yaml").read_text())
    for key in ("group", "scope"):
        assert ours["spec"][key] == real["spec"][key]
    for key in ("plural", "singular", "kind"):
        assert ours["spec"]["names"][key] == real["spec"]["names"][key]
    [mine], [theirs] = ours["spec"]["versions"], real["spec"]["versions"]
    assert (mine["name"], mine["served"], mine["storage"]) == (theirs["name"], theirs["served"], theirs["storage"])
    assert mine["subresources"] == theirs["subresources"]
    assert json.dumps(mine["schema"], sort_keys=True) == json.dumps(theirs["schema"], sort_keys=True)


def test_kubevirts_webhook_admits_our_policy_and_refuses_max_downtime_without_its_gate(kubevirt_clusters, kv_namespace,
                                                                                     dlm):  # noqa: F811
    played.run_vm(kubevirt_clusters.kubevirt["source"], kv_namespace, vm_manifest("vm1", "Always"))
    base = ("migrate", "vm1", "--context", "source", "-n", kv_namespace, "--to-context", "target", "--dry-run=server",
            "-o", "plain", "--bandwidth", "64Mi", "--allow-post-copy", "--completion-timeout-per-gib", "300")
    code, out, err = dlm(*base)
    assert code == errors.OK, out + err
    assert "vm1: checked MigrationPolicy kubectl-dlm-" in out
    # maxDowntimeMs without MigrationStallDetection: KubeVirt's admitter refuses it (:78-93) ...
    code, out, err = dlm(*base, "--max-downtime", "300ms")
    assert code == errors.REFUSED, out + err
    assert "maxDowntimeMs cannot be modified without enabling the MigrationStallDetection feature gate" in err
    # ... which `check` says beforehand
    code, out, err = dlm("check", "vm1", "--context", "source", "-n", kv_namespace, "--to-context", "target",
                         "-o", "json", "--max-downtime", "300ms")
    [row] = [r for r in json.loads(out)["checks"] if r["name"] == "max-downtime"]
    assert row["status"] == "fail" and "MigrationStallDetection" in row["reason"]
    # nothing was created
    left = kubevirt_clusters.by_name("target").request("GET", "/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies")
    assert [p["metadata"]["name"] for p in left["items"]
            if p["spec"]["selectors"].get("namespaceSelector", {}).get("kubernetes.io/metadata.name") == kv_namespace] == []


def test_the_real_migration_controller_applies_our_policy(kubevirt_clusters, kv_namespace, dlm):  # noqa: F811
    """At the hand-off the target's virt-controller matches policies against the receiving VMI and
    writes what it resolved into its migrationState (pkg/virt-controller/watch/migration/
    migration.go:1259, 2601-2643 @v1.9.0): our policy's fields over the KubeVirt CR's defaults, with
    allowWorkloadDisruption following allowPostCopy (migrationpolicy.go:130-134)."""
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW,
                         "--bandwidth", "64Mi", "--allow-post-copy", "--completion-timeout-per-gib", "300")
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    assert_moved(kubevirt_clusters, "source", ns, "target", ns)
    target = kubevirt_clusters.by_name("target")
    [receiving] = [m for m in get(target, ns, "virtualmachineinstancemigrations")["items"] if m["spec"].get("receive")]
    name = f"kubectl-dlm-{receiving['spec']['receive']['migrationID']}"
    state = get(target, ns, "virtualmachineinstances", "vm1")["status"]["migrationState"]
    assert state["migrationPolicyName"] == name
    config = state["migrationConfiguration"]
    assert (config["bandwidthPerMigration"], config["allowPostCopy"], config["allowWorkloadDisruption"],
            config["completionTimeoutPerGiB"]) == ("64Mi", True, True, 300), config
    assert config["progressTimeout"] == 150  # the rest is the cluster's (pkg/virt-config/configuration.go:169, 212)
    # shown once the migration started, as KubeVirt resolved it; the policy removed at the end
    assert f"vm1: KubeVirt applies policy {name}: bandwidth 64Mi/s, post-copy on, workload disruption on" in out
    assert f"vm1: deleted MigrationPolicy {name} on target (the migration is over)" in out
    left = target.request("GET", "/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies")["items"]
    assert name not in [p["metadata"]["name"] for p in left]
