"""tuning.py and its place in the plan: flag values, the MigrationPolicy, KubeVirt's policy matching
(cases from KubeVirt's own pkg/virt-controller/watch/migration/migration_test.go:2316-2397 @v1.9.0),
and the one-line view of what KubeVirt resolved."""

from __future__ import annotations

import pytest

from kubectl_dlm import errors, tuning
from kubectl_dlm.model import LABEL_MIGRATION_ID, LABEL_VM, Settings, TargetInfo, Tuning
from kubectl_dlm.plan import plan
from tests.test_plan import DST, NS, source, vm, vmi


@pytest.mark.parametrize("flags, expected", [
    ({}, None),
    ({"bandwidth": "64Mi"}, Tuning(bandwidth="64Mi")),
    ({"bandwidth": "0"}, Tuning(bandwidth="0")),  # 0: no limit (VMIMConfigurationOptions, types.go:3493-3495)
    ({"bandwidth": "1.5Gi", "allow_post_copy": False}, Tuning(bandwidth="1.5Gi", allow_post_copy=False)),
    ({"completion_timeout_per_gib": 300, "allow_auto_converge": True},
     Tuning(completion_timeout_per_gib=300, allow_auto_converge=True)),
    ({"max_downtime": "300ms"}, Tuning(max_downtime_ms=300)),
    ({"max_downtime": "2s"}, Tuning(max_downtime_ms=2000)),
    ({"max_downtime": "1ms"}, Tuning(max_downtime_ms=1)),
    ({"max_downtime": "2000s"}, Tuning(max_downtime_ms=2000000)),
])
def test_parse(flags, expected):
    assert tuning.parse(**flags) == expected


@pytest.mark.parametrize("flags, message", [
    ({"bandwidth": "fast"}, "--bandwidth 'fast' is not a Kubernetes quantity"),
    ({"bandwidth": "-1Mi"}, "--bandwidth -1Mi is negative"),
    ({"bandwidth": "64MB"}, "--bandwidth '64MB' is not a Kubernetes quantity"),
    ({"completion_timeout_per_gib": 0}, "--completion-timeout-per-gib 0 is not a positive number of seconds"),
    ({"completion_timeout_per_gib": -5}, "--completion-timeout-per-gib -5 is not a positive number of seconds"),
    ({"max_downtime": "300"}, "--max-downtime '300' is not a duration in ms or s"),
    ({"max_downtime": "1.5s"}, "--max-downtime '1.5s' is not a duration in ms or s"),
    ({"max_downtime": "0ms"}, "--max-downtime 0ms is outside 1ms..2000000ms (KubeVirt's bounds)"),
    ({"max_downtime": "2001s"}, "--max-downtime 2001s is outside 1ms..2000000ms (KubeVirt's bounds)"),
])
def test_parse_refuses(flags, message):
    with pytest.raises(errors.UsageError) as exc:
        tuning.parse(**flags)
    assert exc.value.message == message
    assert exc.value.exit_code == errors.USAGE


def test_spec_fields_and_flags():
    t = Tuning(bandwidth="64Mi", allow_post_copy=True, allow_auto_converge=False, max_downtime_ms=300)
    assert tuning.spec_fields(t) == {"bandwidthPerMigration": "64Mi", "allowPostCopy": True,
                                     "allowAutoConverge": False, "maxDowntimeMs": 300}
    assert tuning.flags_of(t) == ["--bandwidth 64Mi", "--allow-post-copy", "--no-allow-auto-converge",
                                  "--max-downtime 300ms"]


# --- KubeVirt's matching --------------------------------------------------------------------

def policy(name, vmi_labels=None, ns_labels=None, selectors=True):
    spec = {}
    if selectors:
        spec["selectors"] = {}
        if vmi_labels is not None:
            spec["selectors"]["virtualMachineInstanceSelector"] = vmi_labels
        if ns_labels is not None:
            spec["selectors"]["namespaceSelector"] = ns_labels
    return {"metadata": {"name": name}, "spec": spec}


def labelled(name, n_vmi, n_ns):
    """preparePolicyAndVMIWithNSAndVMILabels: n labels of the VMI and of the namespace, all matching."""
    return policy(name, {f"{name}-key-{i}": "v" for i in range(n_vmi)}, {f"{name}-ns-key-{i}": "v" for i in range(n_ns)})


def labels_for(*policies):
    vmi_labels, ns_labels = {"kubevirt.io/migrationTargetNodeName": "node-1"}, {}
    for p in policies:
        vmi_labels.update(p["spec"]["selectors"].get("virtualMachineInstanceSelector") or {})
        ns_labels.update(p["spec"]["selectors"].get("namespaceSelector") or {})
    return vmi_labels, ns_labels


@pytest.mark.parametrize("expected, policies", [
    ("one", [labelled("one", 1, 4)]),
    ("two", [labelled("one", 1, 4), labelled("two", 4, 2)]),  # most detailed wins
    ("aa", [labelled("aa", 2, 2), labelled("zz", 2, 2)]),  # a tie: the first name
    ("aa", [labelled("zz", 2, 2), labelled("aa", 2, 2)]),
    ("vmi", [labelled("ns", 0, 3), labelled("vmi", 3, 0)]),  # same total: VMI labels win
])
def test_chosen_as_kubevirt_chooses(expected, policies):
    vmi_labels, ns_labels = labels_for(*policies)
    assert tuning.chosen(policies, vmi_labels, ns_labels)["metadata"]["name"] == expected


def test_one_non_fitting_label_does_not_match():
    p = labelled("p", 4, 3)
    vmi_labels, ns_labels = labels_for(p)
    p["spec"]["selectors"]["virtualMachineInstanceSelector"]["p-key-0"] = "XYZ"
    assert tuning.score(p, vmi_labels, ns_labels) is None
    assert tuning.chosen([p], vmi_labels, ns_labels) is None
    assert tuning.chosen([], vmi_labels, ns_labels) is None


@pytest.mark.parametrize("p, expected", [
    (policy("no-selectors", selectors=False), None),  # countMatchingLabels :89-91
    (policy("empty"), (0, 0)),  # selects everything, with the lowest rank
    (policy("ns-only", None, {"team": "a"}), (0, 1)),
    (policy("ns-other", None, {"team": "b"}), None),
])
def test_score(p, expected):
    assert tuning.score(p, {"app": "db"}, {"team": "a"}) == expected


def test_rivals():
    ours = policy("kubectl-dlm-abc", {LABEL_MIGRATION_ID: "abc", LABEL_VM: "db"},
                  {tuning.NAMESPACE_NAME_LABEL: DST})
    vmi_labels = {LABEL_MIGRATION_ID: "abc", LABEL_VM: "db", "app": "db", "tier": "x", "zone": "z"}
    ns_labels = {tuning.NAMESPACE_NAME_LABEL: DST, "team": "a"}
    weaker = policy("a-weaker", {"app": "db"}, {"team": "a"})  # 2 labels against our 3
    assert tuning.rivals([weaker, ours], ours, vmi_labels, ns_labels) == (None, True)
    # 3 labels, all of the VMI: same total, more VMI labels than ours (2): it wins
    stronger = policy("z-stronger", {"app": "db", "tier": "x", "zone": "z"})
    assert tuning.rivals([weaker, stronger], ours, vmi_labels, ns_labels) == (stronger, True)
    # a namespace without the name label: ours does not match at all
    assert tuning.rivals([weaker], ours, vmi_labels, {"team": "a"}) == (weaker, False)


# --- the plan ---------------------------------------------------------------------------------

TUNED = Settings(source_namespace=NS, target_namespace=DST, connect_url="192.0.2.1:9185",
                 tuning=Tuning(bandwidth="64Mi", allow_post_copy=True))


def _items(settings, vm_obj=None):
    return plan(source(vm_obj or vm(), vmi()), ["vm1"], settings, TargetInfo()).vms[0]


def test_plan_policy_selects_only_the_receiving_vmi():
    vm_plan = _items(TUNED)
    kinds = [i.kind for i in vm_plan.items]
    assert kinds.index("MigrationPolicy") < kinds.index("VirtualMachine")  # applied before the receiving VM
    pol = next(i for i in vm_plan.items if i.kind == "MigrationPolicy")
    assert (pol.name, pol.namespace, pol.phase, pol.side) == (f"kubectl-dlm-{vm_plan.migration_id}", "", "prepare", "target")
    assert pol.context["selectors"] == {
        "virtualMachineInstanceSelector": {LABEL_MIGRATION_ID: vm_plan.migration_id, LABEL_VM: "vm1"},
        "namespaceSelector": {tuning.NAMESPACE_NAME_LABEL: DST}}
    assert pol.context["spec"] == {"bandwidthPerMigration": "64Mi", "allowPostCopy": True}
    target_vm = next(i for i in vm_plan.items if i.kind == "VirtualMachine")
    template_labels = target_vm.context["spec"]["template"]["metadata"]["labels"]
    assert template_labels == {LABEL_MIGRATION_ID: vm_plan.migration_id, LABEL_VM: "vm1"}
    # our policy matches the VMI those labels make, in that namespace
    assert tuning.score({"spec": {"selectors": pol.context["selectors"]}}, template_labels,
                        {tuning.NAMESPACE_NAME_LABEL: DST}) == (2, 1)
    # ... and the VM as the application's repository declares it afterwards has none of them
    after = vm_plan.after[0].context["spec"]["template"]
    assert "metadata" not in after


def test_plan_without_tuning_has_no_policy_and_drops_stale_labels():
    """A move back: the VM we move carries the selector labels of the earlier, tuned move."""
    moved = vm()
    moved["spec"]["template"]["metadata"] = {"labels": {"app": "db", LABEL_MIGRATION_ID: "old", LABEL_VM: "vm1"}}
    untuned = Settings(source_namespace=NS, target_namespace=DST, connect_url="192.0.2.1:9185")
    vm_plan = _items(untuned, moved)
    assert "MigrationPolicy" not in [i.kind for i in vm_plan.items]
    target_vm = next(i for i in vm_plan.items if i.kind == "VirtualMachine")
    assert target_vm.context["spec"]["template"]["metadata"]["labels"] == {"app": "db"}
    tuned = _items(TUNED, moved)
    target_vm = next(i for i in tuned.items if i.kind == "VirtualMachine")
    assert target_vm.context["spec"]["template"]["metadata"]["labels"] == {
        "app": "db", LABEL_MIGRATION_ID: tuned.migration_id, LABEL_VM: "vm1"}
    assert tuned.after[0].context["spec"]["template"]["metadata"]["labels"] == {"app": "db"}


# --- what KubeVirt resolved -----------------------------------------------------------------

def test_resolved_and_described():
    # VirtualMachineInstanceMigrationState (types.go:1033-1035) with VMIMConfigurationOptions (:3480-3540),
    # as migration.go:2629-2643 writes it with a policy that set bandwidth and post-copy
    target_vmi = {"status": {"migrationState": {
        "migrationPolicyName": "kubectl-dlm-abc",
        "migrationConfiguration": {"allowAutoConverge": False, "allowPostCopy": True, "allowWorkloadDisruption": True,
                                   "bandwidthPerMigration": "64Mi", "completionTimeoutPerGiB": 150,
                                   "parallelMigrationsPerCluster": 5, "parallelOutboundMigrationsPerNode": 2,
                                   "progressTimeout": 150, "unsafeMigrationOverride": False,
                                   "nodeDrainTaintKey": "kubevirt.io/drain"}}}}
    name, config = tuning.resolved(target_vmi)
    assert name == "kubectl-dlm-abc"
    assert tuning.describe(name, config) == (
        "policy kubectl-dlm-abc: bandwidth 64Mi/s, post-copy on, workload disruption on, auto-converge off, "
        "completion timeout/GiB 150s, progress timeout 150s")
    assert tuning.resolved({"status": {}}) == (None, None)
    assert tuning.describe(None, {"bandwidthPerMigration": "0", "maxDowntimeMs": 900}) == (
        "no migration policy (the cluster's configuration): bandwidth unlimited, max downtime 900ms")
