"""kubectl_dlm.checks, the pure core: every check passing and failing, with its exact message (no cluster)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any, Dict, List, Optional

import pytest

from kubectl_dlm import checks, errors, pem
from kubectl_dlm.checks import Access, Check, ClusterFacts, Facts, Report
from kubectl_dlm.errors import Refused
from kubectl_dlm.checks.gather import PROGRESS
from kubectl_dlm.model import (LABEL_MIGRATION_ID, MANAGED_BY, MANAGER, Settings, Source, StorageMapping,
                               TargetInfo)
from kubectl_dlm.refs import BY_NAME_MAX, references
from tests.test_pem import NOW, make_cert

SCOPE = "vm prod/db"
MAC = "02:00:00:aa:bb:01"


# --- object builders ------------------------------------------------------------------------

def make_vm(name: str = "db", ns: str = "prod", **spec_extra: Any) -> Dict[str, Any]:
    vm = {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
        "spec": {"runStrategy": "Always", "template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                   "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "root", "dataVolume": {"name": f"{name}-root"}}]}}},
    }
    tspec = vm["spec"]["template"]["spec"]
    for key, value in spec_extra.items():
        tspec[key] = value
    return vm


def make_vmi(name: str = "db", ns: str = "prod", phase: str = "Running", mac: Optional[str] = MAC,
             conditions: Optional[List[Dict[str, str]]] = None) -> Dict[str, Any]:
    if conditions is None:
        conditions = [{"type": "LiveMigratable", "status": "True"}, {"type": "StorageLiveMigratable", "status": "True"}]
    status: Dict[str, Any] = {"phase": phase, "conditions": conditions}
    if mac:
        status["interfaces"] = [{"name": "default", "mac": mac}]
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "namespace": ns, "uid": f"vmi-uid-{name}"}, "spec": {}, "status": status}


def make_pvc(name: str, ns: str = "prod", storage_class: Optional[str] = "local") -> Dict[str, Any]:
    spec: Dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
            "spec": spec, "status": {"phase": "Bound"}}


def make_kubevirt(addresses=("192.0.2.10:9185",), version="v1.8.1", gates=(), disabled=()) -> Dict[str, Any]:
    developer: Dict[str, Any] = {}
    if gates:
        developer["featureGates"] = list(gates)
    if disabled:
        developer["disabledFeatureGates"] = list(disabled)
    status: Dict[str, Any] = {"observedKubeVirtVersion": version} if version else {}
    if addresses:
        status["synchronizationAddresses"] = list(addresses)
    return {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "spec": {"configuration": {"developerConfiguration": developer}}, "status": status}


def settings(**kw: Any) -> Settings:
    base = dict(source_namespace="prod", target_namespace="prod", source_cluster="west", target_cluster="east")
    base.update(kw)
    return Settings(**base)


def source_of(*objects: Dict[str, Any]) -> Source:
    source = Source(live=True)
    for obj in objects:
        source.add(copy.deepcopy(obj))
    return source


def make_facts(*objects: Dict[str, Any], same_cluster: bool = False, found=(), classes=("local",),
               the_settings: Optional[Settings] = None, **kw: Any) -> Facts:
    s = the_settings or settings()
    facts = Facts(source=source_of(*objects), names=["db"], settings=s, same_cluster=same_cluster,
                  clusters={"source": ClusterFacts("source", "west", kubevirt=make_kubevirt()),
                            "target": ClusterFacts("target", "east", kubevirt=make_kubevirt(["192.0.2.20:9185"]))},
                  target=TargetInfo(storage_classes=frozenset(classes), sync_addresses=("192.0.2.20:9185",),
                                    kubevirt_found=True),
                  namespace_exists=True, target_machines=[])
    for obj in found:
        facts.found[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
    for key, value in kw.items():
        setattr(facts, key, value)
    return facts


def base_objects():
    return [make_vm(), make_vmi(), make_pvc("db-root")]


def refs_of(vm, vmi=None):
    return references(vm, vmi)


# --- cluster rows ---------------------------------------------------------------------------

SCOPE_WEST = "cluster west (source)"


def test_dlm_enabled_passes_with_a_sync_address():
    row = checks.check_dlm_enabled(ClusterFacts("source", "west", kubevirt=make_kubevirt()), SCOPE_WEST)
    assert row == Check("dlm-enabled", "pass", "KubeVirt kubevirt/kubevirt publishes synchronization address "
                                               "192.0.2.10:9185", "", SCOPE_WEST)


def test_dlm_enabled_fails_naming_the_gate_and_where_to_set_it():
    row = checks.check_dlm_enabled(ClusterFacts("source", "west", kubevirt=make_kubevirt((), gates=["Snapshot"])),
                                   SCOPE_WEST)
    assert row.status == "fail"
    assert row.reason == ("DLM is off: KubeVirt kubevirt/kubevirt has no status.synchronizationAddresses and does not "
                          "enable DecentralizedLiveMigration (KubeVirt v1.6-v1.9: Alpha, off by default)")
    assert row.fix == ("add DecentralizedLiveMigration to spec.configuration.developerConfiguration.featureGates: "
                       "kubectl --context west -n kubevirt patch kubevirt kubevirt --type merge -p "
                       "'{\"spec\":{\"configuration\":{\"developerConfiguration\":{\"featureGates\":"
                       "[\"Snapshot\",\"DecentralizedLiveMigration\"]}}}}'")


@pytest.mark.parametrize("version", ["v1.10.0", "v1.10.0-alpha.0.512+d923fdb815"])
def test_dlm_enabled_on_main_empty_addresses_mean_no_leader_not_gate_off(version):
    """Beta and on by default on main (pkg/virt-config/featuregate/active.go:310 @d923fdb); the operator
    clears the addresses when the lease has no holder or its pod is gone or terminating (core.go:811-843)."""
    row = checks.check_dlm_enabled(ClusterFacts("source", "west", kubevirt=make_kubevirt((), version=version)),
                                   SCOPE_WEST)
    assert row.status == "fail"
    assert row.reason == ("KubeVirt kubevirt/kubevirt has DecentralizedLiveMigration on by default (Beta on KubeVirt "
                          "main and from v1.10) but status.synchronizationAddresses is empty: "
                          "virt-synchronization-controller has no leader, or its pod is missing, terminating or has "
                          "no IP yet")
    assert row.fix == "check it: kubectl --context west -n kubevirt get deployment,lease virt-synchronization-controller"


def test_dlm_enabled_fails_when_the_beta_gate_is_disabled():
    kv = make_kubevirt((), disabled=["DecentralizedLiveMigration", "Other"])
    row = checks.check_dlm_enabled(ClusterFacts("target", "east", kubevirt=kv), "cluster east (target)")
    assert row.reason == ("DLM is off: KubeVirt kubevirt/kubevirt lists DecentralizedLiveMigration in "
                          "spec.configuration.developerConfiguration.disabledFeatureGates")
    assert row.fix == ("remove it from disabledFeatureGates: kubectl --context east -n kubevirt patch kubevirt kubevirt "
                       "--type merge -p '{\"spec\":{\"configuration\":{\"developerConfiguration\":"
                       "{\"disabledFeatureGates\":[\"Other\"]}}}}'")


def test_dlm_enabled_fails_when_gated_on_but_no_address_yet():
    kv = make_kubevirt((), gates=["DecentralizedLiveMigration"])
    row = checks.check_dlm_enabled(ClusterFacts("source", "west", kubevirt=kv), SCOPE_WEST)
    assert (row.status, row.reason) == ("fail", "KubeVirt kubevirt/kubevirt enables DecentralizedLiveMigration but "
                                                "status.synchronizationAddresses is empty: virt-synchronization-controller "
                                                "has no leader, or its pod is missing, terminating or has no IP yet")


def test_dlm_enabled_without_kubevirt_or_without_access():
    row = checks.check_dlm_enabled(ClusterFacts("source", "west"), SCOPE_WEST)
    assert (row.status, row.reason) == ("fail", "no KubeVirt CR: KubeVirt is not installed on this cluster")
    row = checks.check_dlm_enabled(ClusterFacts("source", "west", kubevirt_error="forbidden"), SCOPE_WEST)
    assert (row.status, row.reason) == ("unknown", "could not verify: cannot list KubeVirt CRs: forbidden")


FIXES_NOTE = " (the kubevirt-fixes row says which of its known DLM bugs matter for each VM)"


@pytest.mark.parametrize("version, status, reason", [
    ("v1.8.1", "pass", "KubeVirt v1.8.1 supports decentralized live migration" + FIXES_NOTE),
    ("v1.10.0-alpha.0.12+abc", "pass", "KubeVirt v1.10.0-alpha.0.12+abc supports decentralized live migration" + FIXES_NOTE),
    ("v1.6.0", "pass", "KubeVirt v1.6.0 supports decentralized live migration" + FIXES_NOTE),
    ("v1.5.2", "fail", "KubeVirt v1.5.2 has no decentralized live migration (it needs v1.6.0 or later)"),
    ("", "unknown", "could not verify: status.observedKubeVirtVersion is not set"),
    ("devel", "unknown", "could not verify: status.observedKubeVirtVersion is 'devel'"),
])
def test_kubevirt_version(version, status, reason):
    row = checks.check_version(ClusterFacts("source", "west", kubevirt=make_kubevirt(version=version)), SCOPE_WEST)
    assert (row.status, row.reason) == (status, reason)


@pytest.mark.parametrize("address, status, reason", [
    ("10.128.2.15:9185", "pass", "10.128.2.15:9185"),
    ("192.0.2.20:9185", "pass", "192.0.2.20:9185"),
    ("[fd00::1]:9185", "pass", "[fd00::1]:9185"),
    ("sync.east.example.com:9185", "pass",
     "sync.east.example.com:9185 (a host name; the other cluster must resolve it, not looked up here)"),
    ("dns:///sync.east:9185", "pass", "dns:///sync.east:9185 (a host name; the other cluster must resolve it, not looked up here)"),
    ("127.0.0.1:9185", "fail", "127.0.0.1:9185 is loopback: the other cluster would dial itself"),
    ("[::1]:9185", "fail", "[::1]:9185 is loopback: the other cluster would dial itself"),
    ("localhost:9185", "fail", "localhost:9185 is loopback: the other cluster would dial itself"),
    ("0.0.0.0:9185", "fail", "0.0.0.0:9185 is the unspecified address, which no peer can dial"),
    ("169.254.10.1:9185", "fail", "169.254.10.1:9185 is link-local: it is not routed beyond its own network segment"),
    ("[fe80::1]:9185", "fail", "[fe80::1]:9185 is link-local: it is not routed beyond its own network segment"),
    ("224.0.0.1:9185", "fail", "224.0.0.1:9185 is a multicast address"),
    ("https://10.0.0.1:9185", "fail", "https://10.0.0.1:9185 has a URL scheme; the sync controller dials a gRPC host:port "
                                               "(or dns:///host:port)"),
    ("fd00::1:9185", "fail", "fd00::1:9185 is an IPv6 address without brackets; write [fd00::1]:9185"),
    ("10.0.0.1", "fail", "10.0.0.1 is not host:port"),
    ("10.0.0.1:99999", "fail", "10.0.0.1:99999 is not host:port"),
    ("bad_host!:9185", "fail", "bad_host!:9185: bad_host! is neither an IP address nor a host name"),
])
def test_sync_address_is_judged_by_its_text_only(address, status, reason):
    assert checks.classify_address(address) == (status, reason)


def test_sync_addresses_both_ways():
    rows = checks.check_sync_addresses(make_facts(*base_objects()))
    assert rows == [
        Check("sync-address", "pass", "east dials 192.0.2.10:9185: looks routable (judged by the text only; "
                                      "nothing was dialled)", "", "cluster west (source)"),
        Check("sync-address", "pass", "west dials 192.0.2.20:9185: looks routable (judged by the text only; "
                                      "nothing was dialled)", "", "cluster east (target)"),
    ]


def test_sync_address_loopback_fails_and_connect_url_overrides_the_target():
    facts = make_facts(*base_objects(), the_settings=settings(connect_url="127.0.0.1:9185"))
    rows = checks.check_sync_addresses(facts)
    assert rows[1] == Check("sync-address", "fail", "127.0.0.1:9185 is loopback: the other cluster would dial itself",
                            "pass a routable address with --connect-url, or configure a KubeVirt migration network "
                            "(spec.configuration.migrations.network) that both clusters route",
                            "cluster east (target)")


def test_sync_address_the_same_on_both_sides_warns():
    facts = make_facts(*base_objects())
    facts.clusters["target"].kubevirt = make_kubevirt(["192.0.2.10:9185"])
    rows = checks.check_sync_addresses(facts)
    assert rows[-1] == Check("sync-address", "warn", "both clusters publish 192.0.2.10:9185: their pod (or migration) "
                                                     "networks overlap, so neither can reach the other's sync controller",
                             "use non-overlapping pod CIDRs or a routed migration network", "clusters west and east")


def test_same_cluster_skips_the_address_and_trust_rows_and_says_why():
    facts = make_facts(*base_objects(), same_cluster=True)
    assert checks.check_sync_addresses(facts) == [Check(
        "sync-address", "pass", "same cluster: its synchronization controller connects to itself", "",
        "cluster west (source and target)")]
    assert checks.check_trust(facts, NOW) == [Check(
        "ca-trust", "pass", "same cluster: no CA exchange is needed (one kubevirt-ca)", "",
        "cluster west (source and target)")]


# --- trust rows -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    d = tmp_path_factory.mktemp("checks-ca")
    return {
        "west": make_cert(d, "/CN=kubevirt.io@1/O=west"),
        "east": make_cert(d, "/CN=kubevirt.io@2/O=east"),
        "soon": make_cert(d, "/CN=kubevirt.io@3/O=soon", not_after=NOW + dt.timedelta(hours=5)),
        "expired": make_cert(d, "/CN=old", not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1)),
    }


def trust_facts(west_bundle: Optional[str], east_bundle: Optional[str], **errors_: str) -> Facts:
    facts = make_facts(*base_objects())
    facts.clusters["source"].ca_bundle = west_bundle
    facts.clusters["target"].ca_bundle = east_bundle
    facts.clusters["source"].ca_error = errors_.get("west", "")
    facts.clusters["target"].ca_error = errors_.get("east", "")
    return facts


def test_trust_passes_when_each_holds_the_others_valid_cas(cas):
    both = cas["west"] + cas["east"]
    rows = checks.check_trust(trust_facts(both + cas["expired"], cas["east"] + cas["west"]), NOW)
    west, east = pem.parse_bundle(cas["west"])[0], pem.parse_bundle(cas["east"])[0]
    assert rows[:2] == [
        Check("ca-trust", "pass", "east's kubevirt-ca holds all 2 of west's valid CA certificate(s)", "", "east trusts west"),
        Check("ca-trust", "pass", "west's kubevirt-ca holds all 2 of east's valid CA certificate(s)", "", "west trusts east"),
    ]
    assert rows[2] == Check("ca-expiry", "pass", f"2 valid certificate(s), the first expires "
                                                 f"{pem.format_time(min(west.not_after, east.not_after))} "
                                                 "(1 expired one(s) ignored)", "", "kubevirt/kubevirt-ca on west")


def test_trust_fails_naming_the_missing_certificate_and_the_command(cas):
    east = pem.parse_bundle(cas["east"])[0]
    rows = checks.check_trust(trust_facts(cas["west"], cas["east"] + cas["west"]), NOW)
    assert rows[0].status == "pass"
    assert rows[1] == Check("ca-trust", "fail", f"west's kubevirt-ca lacks 1 of east's 2 CA certificate(s): "
                                                f"{east.describe()}",
                            "kubectl dlm trust --context west --to-context east", "west trusts east")


def test_trust_is_unknown_when_a_bundle_cannot_be_read(cas):
    rows = checks.check_trust(trust_facts(cas["west"], None, east="ConfigMap kubevirt/kubevirt-ca not found"), NOW)
    assert rows[0] == Check("ca-trust", "unknown", "could not verify: cannot read kubevirt-ca on east: "
                                                   "ConfigMap kubevirt/kubevirt-ca not found", "", "east trusts west")
    assert rows[3] == Check("ca-expiry", "unknown", "could not verify: ConfigMap kubevirt/kubevirt-ca not found", "",
                            "kubevirt/kubevirt-ca on east")


def test_expiry_warns_within_24h_and_fails_when_nothing_is_valid(cas):
    soon = pem.parse_bundle(cas["soon"])[0]
    old = pem.parse_bundle(cas["expired"])[0]
    row = checks.expiry_row([soon], NOW, "s", "kubectl dlm trust --context west --to-context east")
    assert row == Check("ca-expiry", "warn", f"expires within 24h: {soon.describe()}",
                        "KubeVirt renews its CA before expiry; run `kubectl dlm trust --context west --to-context east` "
                        "again after it has, `kubectl dlm migrate` re-posts trust right before it starts", "s")
    row = checks.expiry_row([old], NOW, "s", "x")
    assert row == Check("ca-expiry", "fail", f"every certificate in it has expired: {old.describe()}",
                        "check virt-operator, which renews the KubeVirt CA", "s")


def test_trust_fails_when_the_peer_has_no_valid_ca(cas):
    rows = checks.check_trust(trust_facts(cas["expired"], cas["east"]), NOW)
    assert rows[0] == Check("ca-trust", "fail", "west's kubevirt-ca holds no currently valid certificate",
                            "check virt-operator on west", "east trusts west")


# --- permissions, namespace ------------------------------------------------------------------

def test_permissions_pass_fail_and_could_not_verify():
    cf = ClusterFacts("target", "east", access=[(Access("patch", "virtualmachines", "kubevirt.io", "prod"), True, ""),
                                                (Access("get", "namespaces", "", "", "prod"), True, "")])
    assert checks.check_access(cf, "t") == Check(
        "permissions", "pass", "you may do all 2 things the migration needs here (SelfSubjectAccessReview)", "", "t")
    cf.access.append((Access("list", "events", "", "prod", optional="Events as evidence"), False, ""))
    assert checks.check_access(cf, "t") == Check(  # an optional one denied: warned, what goes without it said
        "permissions", "warn", "you may not: list events in namespace prod; the migration goes on without: "
                               "Events as evidence",
        "ask for these permissions (RBAC) on east to have them (`kubectl dlm rbac` prints them)", "t")
    cf.access.append((Access("patch", "datavolumes", "cdi.kubevirt.io", "prod"), False, ""))
    cf.access.append((Access("list", "kubevirts", "kubevirt.io"), False, ""))
    assert checks.check_access(cf, "t") == Check(
        "permissions", "fail", "you may not: patch datavolumes.cdi.kubevirt.io in namespace prod; "
                               "list kubevirts.kubevirt.io (cluster-wide)",
        "ask for these permissions (RBAC) on east (`kubectl dlm rbac` prints them), or use a context that has them",
        "t")
    cf = ClusterFacts("target", "east", access_error="create SelfSubjectAccessReview: not found on cluster x")
    row = checks.check_access(cf, "t")
    assert (row.status, row.reason) == ("unknown", "could not verify (SelfSubjectAccessReview): create "
                                                   "SelfSubjectAccessReview: not found on cluster x")


def test_required_access_covers_copies_and_trust_only_across_clusters():
    vm = make_vm(volumes=[{"name": "root", "dataVolume": {"name": "db-root"}},
                          {"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "db-ci"}}}])
    facts = make_facts(vm, make_vmi())
    needed = checks.required_access(facts, {"db": references(vm)})
    target = [a.describe() for a in needed["target"]]
    assert "patch secrets db-ci in namespace prod" in target  # by name: the rule names the Secret
    assert "update configmaps kubevirt-external-ca in namespace kubevirt" in target  # trust replaces it
    source = [a.describe() for a in needed["source"]]
    assert "get secrets db-ci in namespace prod" in source and "list secrets in namespace prod" not in source
    optional = {a.describe(): a.optional for a in needed["source"] if a.optional}
    assert optional["get pods/proxy in namespace kubevirt"] == PROGRESS
    facts.same_cluster = True
    needed = checks.required_access(facts, {"db": references(vm)})
    assert not any("kubevirt-external-ca" in a.describe() for a in needed["target"] + needed["source"])


def test_a_big_batch_may_list_its_secrets_and_configmaps_which_is_optional():
    """Past refs.BY_NAME_MAX names of a kind, kube.read_named lists: an optional row on each side that
    reads them, the GETs by name staying (they are what goes without it)."""
    def needed_for(count: int):
        vm = make_vm(volumes=[{"name": f"ci{i}", "cloudInitNoCloud": {"secretRef": {"name": f"s{i}"}}}
                              for i in range(count)] +
                             [{"name": f"cm{i}", "configMap": {"name": f"c{i}"}} for i in range(count)])
        needed = checks.required_access(make_facts(vm, make_vmi()), {"db": references(vm)})
        return {side: {a.describe(): a.optional for a in accesses} for side, accesses in needed.items()}

    few, many = needed_for(BY_NAME_MAX), needed_for(BY_NAME_MAX + 1)
    for side in ("source", "target"):
        assert "list secrets in namespace prod" not in few[side]
        assert many[side]["list secrets in namespace prod"].startswith(f"reading more than {BY_NAME_MAX} Secrets "
                                                                      "of a batch in one list (without it: a get each")
        assert many[side][f"get secrets s{BY_NAME_MAX} in namespace prod"] == ""  # still required: the fallback
    assert "list configmaps in namespace prod" not in few["source"]
    assert many["source"]["list configmaps in namespace prod"].startswith(f"reading more than {BY_NAME_MAX} ConfigMaps")
    assert few["target"]["list configmaps in namespace prod"] == ""  # check lists the target's ConfigMaps anyway


def test_target_namespace():
    facts = make_facts(*base_objects())
    assert checks.check_target_namespace(facts) == Check("target-namespace", "pass", "namespace prod exists", "",
                                                         "cluster east (target)")
    facts.namespace_exists = False
    assert checks.check_target_namespace(facts) == Check("target-namespace", "fail",
                                                         "namespace prod does not exist on the target",
                                                         "kubectl --context east create namespace prod",
                                                         "cluster east (target)")
    facts.namespace_exists, facts.namespace_error = None, "forbidden"
    assert checks.check_target_namespace(facts).reason == "could not verify namespace prod: forbidden"


# --- VM rows --------------------------------------------------------------------------------

def test_running():
    assert checks.check_running(make_vm(), make_vmi(), SCOPE) == Check(
        "vm-running", "pass", "its VirtualMachineInstance is Running", "", SCOPE)
    assert checks.check_running(make_vm(), None, SCOPE) == Check(
        "vm-running", "fail", "it is not running (no VirtualMachineInstance); DLM moves running VMs only",
        "start it: virtctl start db -n prod", SCOPE)
    assert checks.check_running(make_vm(), make_vmi(phase="Scheduling"), SCOPE).reason == \
        "its VirtualMachineInstance is Scheduling, not Running"
    receiver = make_vm()
    receiver["spec"]["runStrategy"] = "WaitAsReceiver"
    assert checks.check_running(receiver, make_vmi(), SCOPE).reason == \
        "it is itself waiting to receive a migration (runStrategy WaitAsReceiver)"


def test_migratable_conditions():
    assert checks.check_migratable_conditions(make_vmi(), SCOPE) == [
        Check("live-migratable", "pass", "LiveMigratable is True", "", SCOPE),
        Check("storage-live-migratable", "pass", "StorageLiveMigratable is True", "", SCOPE)]
    vmi = make_vmi(conditions=[
        {"type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable", "message": "local disk"},
        {"type": "StorageLiveMigratable", "status": "False", "reason": "HotplugNotLiveMigratable",
         "message": "hotplug disk hp1 is not migratable "}])
    live, storage = checks.check_migratable_conditions(vmi, SCOPE)
    assert live == Check("live-migratable", "pass", "LiveMigratable is False only because of its disks "
                                                    "(DisksNotLiveMigratable), which DLM copies", "", SCOPE)
    assert storage == Check("storage-live-migratable", "fail", "StorageLiveMigratable is False "
                                                               "(HotplugNotLiveMigratable: hotplug disk hp1 is not migratable)",
                            "remove what blocks live migration (see the condition message), then check again", SCOPE)
    vmi = make_vmi(conditions=[{"type": "LiveMigratable", "status": "False", "reason": "InterfaceNotLiveMigratable",
                                "message": "bridge interface"}])
    live, storage = checks.check_migratable_conditions(vmi, SCOPE)
    assert live.reason == "LiveMigratable is False (InterfaceNotLiveMigratable: bridge interface)"
    assert storage == Check("storage-live-migratable", "unknown",
                            "could not verify: the VMI has no StorageLiveMigratable condition yet", "", SCOPE)


def vmim(name: str, phase: str, ours: bool = False) -> Dict[str, Any]:
    labels = {MANAGED_BY: MANAGER, LABEL_MIGRATION_ID: "abc123"} if ours else {}
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": name, "namespace": "prod", "labels": labels},
            "spec": {"vmiName": "db"}, "status": {"phase": phase}}


def test_other_migrations():
    assert checks.check_other_migrations(source_of(vmim("old", "Succeeded")), "prod", "db", SCOPE) == Check(
        "no-other-migration", "pass", "no migration in progress for it", "", SCOPE)
    assert checks.check_other_migrations(source_of(vmim("ours", "Synchronizing", ours=True)), "prod", "db", SCOPE) == \
        Check("no-other-migration", "pass", "our migration ours (migration-id abc123) is Synchronizing: migrate "
                                            "resumes it", "", SCOPE)
    assert checks.check_other_migrations(source_of(vmim("evict", "Running")), "prod", "db", SCOPE) == Check(
        "no-other-migration", "fail", "migration evict is already Running for it",
        "wait for it to finish, or cancel it: kubectl delete vmim evict -n prod", SCOPE)


def test_volumes_and_persistent_state():
    vm = make_vm()
    assert checks.check_volumes(refs_of(vm), SCOPE) == Check(
        "supported-volumes", "pass", "no shareable, LUN, hostDisk, virtiofs or ephemeral volume", "", SCOPE)
    bad = make_vm(domain={"devices": {"disks": [{"name": "root", "shareable": True}, {"name": "l", "lun": {}}],
                                      "filesystems": [{"name": "fs", "virtiofs": {}}],
                                      "tpm": {"persistent": True}},
                          "firmware": {"bootloader": {"efi": {"persistent": True}}}},
                  volumes=[{"name": "root", "dataVolume": {"name": "db-root"}},
                           {"name": "h", "hostDisk": {"path": "/x", "type": "Disk"}}])
    row = checks.check_volumes(refs_of(bad), SCOPE)
    assert row == Check("supported-volumes", "fail",
                        "volume h is a hostDisk (a file on the source node); DLM cannot copy it; "
                        "disk root is shareable; DLM cannot keep several writers consistent; "
                        "disk l is a LUN; the target cannot be guaranteed to be a LUN; "
                        "filesystem fs uses virtiofs, which cannot be live migrated",
                        "remove or replace these volumes; DLM cannot move them", SCOPE)
    assert checks.check_persistent_state(refs_of(vm), SCOPE).reason == "no persistent TPM or EFI state"
    assert checks.check_persistent_state(refs_of(bad), SCOPE) == Check(
        "persistent-state", "warn", "it has persistent TPM and persistent EFI state: KubeVirt creates the state PVC on "
                                    "the target itself; if its storage is RWX on both sides, the vTPM data is not copied "
                                    "(upstream bug)",
        "use RWO backend storage (spec.configuration.vmStateStorageClass) on at least one side", SCOPE)


def test_storage_classes():
    vm = make_vm()
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), classes=("local", "ceph"))
    assert checks.check_storage_classes(facts, vm, refs_of(vm), SCOPE) == Check(
        "storage-classes", "pass", "every disk has a storage class on the target (db-root: local)", "", SCOPE)
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), classes=("ceph", "nfs"))
    assert checks.check_storage_classes(facts, vm, refs_of(vm), SCOPE) == Check(
        "storage-classes", "fail", "storage class local (claim db-root) does not exist on the target and is not mapped",
        "map it with --storage-class-map local=<class on the target>; the target has: ceph, nfs", SCOPE)
    mapped = settings(storage_map={"local": StorageMapping("ceph")})
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), classes=("ceph",), the_settings=mapped)
    assert checks.check_storage_classes(facts, vm, refs_of(vm), SCOPE).reason == \
        "every disk has a storage class on the target (db-root: local -> ceph)"
    wrong = settings(storage_map={"local": StorageMapping("cehp")})
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), classes=("ceph",), the_settings=wrong)
    assert checks.check_storage_classes(facts, vm, refs_of(vm), SCOPE) == Check(
        "storage-classes", "fail", "storage class cehp (mapped from local, claim db-root) does not exist on the target",
        "fix --storage-class-map local=<class on the target>; the target has: ceph", SCOPE)
    facts = make_facts(vm, make_vmi())
    assert checks.check_storage_classes(facts, vm, refs_of(vm), SCOPE).reason == \
        "PersistentVolumeClaim prod/db-root (volume root) not found on the source"
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"))
    facts.target = TargetInfo(storage_classes=None)
    facts.lookup_errors["StorageClass"] = "forbidden"
    assert checks.check_storage_classes(facts, vm, refs_of(vm), SCOPE).reason == \
        "could not verify: cannot list storage classes on the target: forbidden"


def multus_vm():
    return make_vm(networks=[{"name": "default", "pod": {}}, {"name": "storage", "multus": {"networkName": "storage-net"}}])


def test_networks():
    vm = multus_vm()
    facts = make_facts(vm, make_vmi(), nads={"prod/storage-net": (True, "")})
    assert checks.check_networks(facts, refs_of(vm), SCOPE) == Check(
        "networks", "pass", "every Multus network exists on the target (storage: prod/storage-net)", "", SCOPE)
    facts = make_facts(vm, make_vmi(), nads={"prod/storage-net": (False, "")})
    assert checks.check_networks(facts, refs_of(vm), SCOPE) == Check(
        "networks", "fail", "network storage: NetworkAttachmentDefinition prod/storage-net (not mapped) does not exist "
                            "on the target",
        "create it on the target, or map it with --network-map storage-net=<namespace>/<name on the target>", SCOPE)
    mapped = settings(network_map={"storage-net": "net/storage-east"})
    facts = make_facts(vm, make_vmi(), nads={"net/storage-east": (False, "")}, the_settings=mapped)
    assert checks.check_networks(facts, refs_of(vm), SCOPE).reason == (
        "network storage: NetworkAttachmentDefinition net/storage-east (mapped from storage-net) does not exist "
        "on the target")
    assert checks.check_networks(make_facts(make_vm()), refs_of(make_vm()), SCOPE).reason == \
        "no Multus network (pod network only)"


def labelled(obj: Dict[str, Any], migration_id: str) -> Dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["labels"] = {MANAGED_BY: MANAGER, LABEL_MIGRATION_ID: migration_id}
    return obj


def test_collisions_pass_fail_and_reuse():
    vm = make_vm()
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"))
    refs = refs_of(vm)
    assert checks.check_collisions(facts, "db", None, refs, "mid1", SCOPE) == Check(
        "name-collisions", "pass", "nothing on the target has the names the bundle creates", "", SCOPE)
    other_vm = make_vm()
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), found=[other_vm, make_pvc("db-root")])
    assert checks.check_collisions(facts, "db", None, refs, "mid1", SCOPE) == Check(
        "name-collisions", "fail", "VirtualMachine prod/db already exists and is not part of this migration; "
                                   "PersistentVolumeClaim prod/db-root already exists and is not part of this migration",
        "delete or rename what is in the way, or choose another --to-namespace", SCOPE)
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), found=[labelled(other_vm, "mid1")])
    assert checks.check_collisions(facts, "db", None, refs, "mid1", SCOPE) == Check(
        "name-collisions", "pass", "nothing in the way; 1 object(s) of this migration already exist and will be "
                                   "reused: VirtualMachine prod/db", "", SCOPE)
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), found=[labelled(other_vm, "old99")])
    assert checks.check_collisions(facts, "db", None, refs, "mid1", SCOPE) == Check(
        "name-collisions", "fail", "VirtualMachine prod/db is left over from an earlier attempt (migration-id old99)",
        "remove the earlier attempt: kubectl dlm cleanup db -n prod", SCOPE)


def test_collisions_use_the_plan_names_including_migrations():
    from kubectl_dlm.plan import plan

    vm = make_vm()
    objects = [vm, make_vmi(), make_pvc("db-root")]
    facts = make_facts(*objects)
    vm_plan = plan(facts.source, ["db"], facts.settings, facts.target).vms[0]
    receive = next(i for i in vm_plan.items if i.phase == "receive")
    taken = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
             "metadata": {"name": receive.name, "namespace": "prod"}}
    facts = make_facts(*objects, found=[taken])
    row = checks.check_collisions(facts, "db", vm_plan, refs_of(vm), vm_plan.migration_id, SCOPE)
    assert row.reason == f"VirtualMachineInstanceMigration prod/{receive.name} already exists and is not part of this migration"


def test_macs():
    vm = make_vm()
    facts = make_facts(vm, make_vmi())
    assert checks.check_macs(facts, vm, make_vmi(), "mid1", SCOPE) == Check(
        "mac-addresses", "pass", f"no VM on the target uses {MAC}", "", SCOPE)
    other = make_vmi(name="web", ns="apps", mac=MAC.upper())
    facts = make_facts(vm, make_vmi(), target_machines=[other])
    assert checks.check_macs(facts, vm, make_vmi(), "mid1", SCOPE) == Check(
        "mac-addresses", "fail", f"{MAC} (interface default) is used by VirtualMachineInstance apps/web",
        "give one of the VMs another MAC address (spec.template.spec.domain.devices.interfaces[].macAddress)", SCOPE)
    # Same cluster: the VM itself is not a clash; our receiving VM is not a clash either.
    facts = make_facts(vm, make_vmi(), target_machines=[make_vmi()], same_cluster=True)
    assert checks.check_macs(facts, vm, make_vmi(), "mid1", SCOPE).status == "pass"
    receiver = make_vm()
    receiver["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = MAC
    facts = make_facts(vm, make_vmi(), target_machines=[labelled(receiver, "mid1"), make_vmi()])
    assert checks.check_macs(facts, vm, make_vmi(), "mid1", SCOPE).status == "pass"
    facts = make_facts(vm, make_vmi(), target_machines=None, target_machines_error="forbidden")
    assert checks.check_macs(facts, vm, make_vmi(), "mid1", SCOPE).reason == (
        "could not verify: cannot list VirtualMachines/VirtualMachineInstances in all namespaces of the target: forbidden")
    assert checks.check_macs(facts, vm, make_vmi(mac=None), "mid1", SCOPE).reason == \
        "no fixed MAC address (the target assigns its own)"


def secret(name: str, ns: str, **data: str) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "type": "Opaque",
            "data": dict(data)}


def ci_vm():
    return make_vm(volumes=[{"name": "root", "dataVolume": {"name": "db-root"}},
                            {"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "db-ci"}}},
                            {"name": "cfg", "configMap": {"name": "db-cfg"}}])


def configmap(name: str, ns: str, **data: str) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": dict(data)}


def test_referenced_objects():
    vm = ci_vm()
    facts = make_facts(vm, make_vmi(), secret("db-ci", "prod", userdata="c2VjcmV0"), configmap("db-cfg", "prod", a="1"))
    assert checks.check_referenced(facts, refs_of(vm), SCOPE) == Check(
        "referenced-objects", "pass", "all 2 referenced object(s) exist on the source", "", SCOPE)
    facts = make_facts(vm, make_vmi())
    assert checks.check_referenced(facts, refs_of(vm), SCOPE) == Check(
        "referenced-objects", "fail", "not found on the source: Secret prod/db-ci (volume ci (cloudInitNoCloud.secretRef)); "
                                      "ConfigMap prod/db-cfg (volume cfg (configMap))",
        "create them on the source (the VM cannot restart without them either)", SCOPE)
    it_vm = make_vm()
    it_vm["spec"]["instancetype"] = {"kind": "VirtualMachineClusterInstancetype", "name": "u1.small"}
    facts = make_facts(it_vm, make_vmi(), cluster_objects={("source", "VirtualMachineClusterInstancetype", "u1.small"): (None, "")})
    assert checks.check_referenced(facts, refs_of(it_vm), SCOPE).reason == \
        "not found on the source: VirtualMachineClusterInstancetype u1.small (spec.instancetype)"


def test_copies_compare_content_by_hash_and_never_show_values():
    vm = ci_vm()
    src = [vm, make_vmi(), secret("db-ci", "prod", userdata="c291cmNl"), configmap("db-cfg", "prod", a="1")]
    facts = make_facts(*src)
    assert checks.check_copies(facts, refs_of(vm), "mid1", SCOPE) == Check(
        "copied-objects", "pass", "Secret db-ci will be created; ConfigMap db-cfg will be created", "", SCOPE)
    facts = make_facts(*src, found=[secret("db-ci", "prod", userdata="c291cmNl"), configmap("db-cfg", "prod", a="1")])
    assert checks.check_copies(facts, refs_of(vm), "mid1", SCOPE).reason == (
        "Secret prod/db-ci already exists with the same content; ConfigMap prod/db-cfg already exists with the same content")
    facts = make_facts(*src, found=[secret("db-ci", "prod", userdata="dGFyZ2V0", extra="eA=="),
                                    configmap("db-cfg", "prod", a="1")])
    row = checks.check_copies(facts, refs_of(vm), "mid1", SCOPE)
    assert row == Check("copied-objects", "fail", "Secret prod/db-ci already exists on the target with different content "
                                                  "(data.extra, data.userdata)",
                        "make the target's copy match or delete it (it is not overwritten); for Secrets you may instead "
                        "keep the target's with --secrets reference", SCOPE)
    assert "c291cmNl" not in json.dumps(row.to_dict()) and "dGFyZ2V0" not in json.dumps(row.to_dict())
    facts = make_facts(*src, found=[labelled(secret("db-ci", "prod", userdata="c291cmNl"), "mid1")])
    assert checks.check_copies(facts, refs_of(vm), "mid1", SCOPE).reason == \
        "Secret db-ci is already copied; ConfigMap db-cfg will be created"


def test_copies_with_secrets_by_reference():
    vm = ci_vm()
    src = [vm, make_vmi(), secret("db-ci", "prod", userdata="c291cmNl"), configmap("db-cfg", "prod", a="1")]
    by_ref = settings(secrets="reference")
    facts = make_facts(*src, the_settings=by_ref)
    assert checks.check_copies(facts, refs_of(vm), "mid1", SCOPE).reason == (
        "Secret prod/db-ci is not in the bundle (--secrets reference) and does not exist on the target")
    facts = make_facts(*src, the_settings=by_ref, found=[secret("db-ci", "prod", userdata="dGFyZ2V0")])
    assert checks.check_copies(facts, refs_of(vm), "mid1", SCOPE) == Check(
        "copied-objects", "warn", "Secret prod/db-ci on the target differs from the source's (data.userdata); "
                                  "the VM will use the target's",
        "check that the target's version is the one you want", SCOPE)


def test_bundle_row_warns_with_the_plans_warnings_except_those_with_a_row_of_their_own():
    from kubectl_dlm.model import VMPlan

    vm_plan = VMPlan(vm="db", migration_id="abc", warnings=[
        "prod/db has persistent TPM state: KubeVirt creates the state PVC on the target itself (...)",
        "volume hp is hotplugged into the running VM but not in its spec; the target VM gets it as a persisted "
        "hotplug volume"])
    assert checks.check_bundle(vm_plan, SCOPE) == Check(
        "bundle", "warn", "0 object(s) planned (migration-id abc); volume hp is hotplugged into the running VM but not "
                          "in its spec; the target VM gets it as a persisted hotplug volume",
        "see `kubectl dlm render` for the bundle", SCOPE)
    vm_plan.warnings = vm_plan.warnings[:1]
    assert checks.check_bundle(vm_plan, SCOPE) == Check("bundle", "pass", "0 object(s) planned (migration-id abc)",
                                                        "", SCOPE)


def test_bundle_row():
    assert checks.check_bundle(Refused("cannot migrate VirtualMachine prod/db: it is not running", "see check"),
                               SCOPE) == Check("bundle", "fail", "cannot be planned: cannot migrate VirtualMachine "
                                                                 "prod/db: it is not running", "see check", SCOPE)


# --- the whole report -----------------------------------------------------------------------

def test_evaluate_lists_every_problem_not_just_the_first(cas):
    vm = make_vm(volumes=[{"name": "root", "dataVolume": {"name": "db-root"}},
                          {"name": "h", "hostDisk": {"path": "/x", "type": "Disk"}}])
    facts = make_facts(vm, make_pvc("db-root"), classes=("ceph",))  # not running, hostDisk, unknown class
    facts.clusters["source"].ca_bundle = cas["west"]
    facts.clusters["target"].ca_bundle = cas["east"]
    facts.vm_plans["db"] = Refused("cannot migrate VirtualMachine prod/db: it is not running", "h")
    rows = checks.evaluate(facts, NOW)
    failed = [(r.name, r.scope) for r in rows if r.status == "fail"]
    assert failed == [("ca-trust", "east trusts west"), ("ca-trust", "west trusts east"),
                      ("vm-running", SCOPE), ("supported-volumes", SCOPE), ("storage-classes", SCOPE), ("bundle", SCOPE)]
    names = [r.name for r in rows]
    for name in ("dlm-enabled", "kubevirt-version", "sync-address", "ca-trust", "ca-expiry", "permissions",
                 "target-namespace", "vm-running", "live-migratable", "storage-live-migratable", "no-other-migration",
                 "supported-volumes", "persistent-state", "storage-classes", "networks", "name-collisions",
                 "mac-addresses", "referenced-objects", "copied-objects", "bundle", "placement", "kubevirt-fixes"):
        assert name in names
    report = Report(rows=rows)
    assert report.failed
    assert report.counts()["fail"] == 6


def test_table_and_json():
    report = Report(rows=[Check("dlm-enabled", "pass", "ok", "", "cluster west (source)"),
                          Check("storage-classes", "fail", "storage class local (claim db-root) does not exist",
                                "map it with --storage-class-map local=ceph", SCOPE),
                          Check("permissions", "unknown", "could not verify", "", "target")])
    table = checks.format_table(report)
    assert table.splitlines()[0].split() == ["STATUS", "CHECK", "FOR", "REASON"]
    assert "fix: map it with --storage-class-map local=ceph" in table
    assert table.splitlines()[-1] == "1 failed, 0 warning(s), 1 could not be verified, 1 passed"
    data = report.to_dict()
    assert data["failed"] is True and data["counts"] == {"pass": 1, "warn": 0, "fail": 1, "unknown": 1}
    assert data["checks"][1] == {"name": "storage-classes", "scope": SCOPE, "status": "fail",
                                 "reason": "storage class local (claim db-root) does not exist",
                                 "fix": "map it with --storage-class-map local=ceph"}


@pytest.mark.parametrize("rows, code", [([Check("a", "pass", "")], 0), ([Check("a", "warn", ""), Check("b", "unknown", "")], 0),
                                        ([Check("a", "pass", ""), Check("b", "fail", "")], errors.REFUSED)])
def test_check_command_exit_code_and_json(monkeypatch, cli, rows, code):
    monkeypatch.setattr(checks, "run_checks", lambda request: Report(rows=list(rows)))
    result = cli("check", "db", "-n", "prod", "--to-context", "east", "-o", "json")
    assert result.code == code, result.stderr
    assert [c["status"] for c in json.loads(result.stdout)["checks"]] == [r.status for r in rows]


def test_run_checks_on_an_export_marks_cluster_rows_could_not_verify(fixture_path):
    from kubectl_dlm import pipeline

    path = fixture_path("pvc-volumes")
    request = pipeline.Request(filename=str(path), to_namespace="prod-b", connect_url="192.0.2.20:9185")
    report = checks.run_checks(request, now=NOW)
    by_name = {(r.name, r.scope): r for r in report.rows}
    assert all(r.status == "unknown" for r in report.rows if r.name in ("dlm-enabled", "permissions"))
    assert not any(r.status == "pass" and r.name == "permissions" for r in report.rows)
    assert by_name  # the VM rows were evaluated from the file


def retired(obj: Dict[str, Any]) -> Dict[str, Any]:
    """The copy `kubectl dlm retire` left after an earlier move away (a move back finds it)."""
    from kubectl_dlm.model import ANN_MIGRATED_TO

    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("annotations", {})[ANN_MIGRATED_TO] = "east/prod/db"
    obj.setdefault("spec", {})["runStrategy"] = "Halted"
    return obj


def test_a_retired_copy_in_the_way_of_a_move_back_warns_and_is_no_mac_clash():
    vm = make_vm()
    refs = refs_of(vm)
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"), found=[retired(make_vm()), retired(make_pvc("db-root"))])
    row = checks.check_collisions(facts, "db", None, refs, "mid1", SCOPE)
    assert row.status == "warn" and "the retired copy of an earlier move is where this one goes" in row.reason
    assert "VirtualMachine prod/db" in row.reason and "PersistentVolumeClaim prod/db-root" in row.reason
    assert "--replace-retired" in row.fix
    copy_with_mac = retired(make_vm())
    copy_with_mac["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = MAC
    facts = make_facts(vm, make_vmi(), target_machines=[copy_with_mac])
    assert checks.check_macs(facts, vm, make_vmi(), "mid1", SCOPE).status == "pass"
    # someone else's VM with that MAC still clashes
    facts = make_facts(vm, make_vmi(), target_machines=[copy_with_mac, make_vmi(name="web", ns="apps")])
    assert checks.check_macs(facts, vm, make_vmi(), "mid1", SCOPE).status == "fail"
