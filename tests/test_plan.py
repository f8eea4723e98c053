"""plan.py on small in-memory sources: sizing, storage classes, migration IDs, the target VM, refusals."""

from __future__ import annotations

import copy
from typing import List, Optional

import pytest

from kubectl_dlm import errors
from kubectl_dlm.errors import NotFound, Refused, UsageError
from kubectl_dlm.model import Settings, Source, StorageMapping, TargetInfo
from kubectl_dlm.plan import label_value, plan, restore_run_strategy

NS, DST = "src", "dst"


def vm(name="vm1", volumes=None, spec_extra=None, uid="vm-uid-1", disks=None, interfaces=None) -> dict:
    spec = {"runStrategy": "Always", "template": {"spec": {
        "domain": {"devices": {"disks": disks or [], "interfaces": interfaces if interfaces is not None else
                               [{"name": "default", "masquerade": {}}]}},
        "networks": [{"name": "default", "pod": {}}],
        "volumes": volumes or []}}}
    spec.update(spec_extra or {})
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": NS, "uid": uid}, "spec": spec}


def vmi(name="vm1", uid="vmi-uid-1", phase="Running", conditions=None, status_extra=None, spec=None) -> dict:
    status = {"phase": phase, "conditions": conditions or [], "interfaces": [{"name": "default", "mac": "02:00:00:00:00:01"}]}
    status.update(status_extra or {})
    return {"kind": "VirtualMachineInstance", "metadata": {"name": name, "namespace": NS, "uid": uid},
            "spec": spec or {"domain": {"firmware": {"uuid": "uuid-from-vmi"}}}, "status": status}


def pvc(name, mode="Filesystem", request="10Gi", capacity=None, sc="standard", access=("ReadWriteOnce",)) -> dict:
    obj = {"kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
           "spec": {"accessModes": list(access), "resources": {"requests": {"storage": request}}, "storageClassName": sc}}
    if mode:
        obj["spec"]["volumeMode"] = mode
    if capacity:
        obj["status"] = {"capacity": {"storage": capacity}}
    return obj


def vmim(name, phase, ours=False, migration_id=None, vmi_name="vm1") -> dict:
    labels = {"app.kubernetes.io/managed-by": "kubectl-dlm"} if ours else {}
    if migration_id:
        labels["dlm.kubevirt-tools.io/migration-id"] = migration_id
    return {"kind": "VirtualMachineInstanceMigration", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"vmiName": vmi_name}, "status": {"phase": phase}}


def source(*objs, live=False) -> Source:
    s = Source(live=live)
    for o in objs:
        s.add(copy.deepcopy(o))
    return s


def settings(**kw) -> Settings:
    base = dict(source_namespace=NS, target_namespace=DST, connect_url="192.0.2.1:9185")
    base.update(kw)
    return Settings(**base)


def one(objs, names=("vm1",), target=TargetInfo(), **kw):
    return plan(source(*objs), list(names), settings(**kw), target)


def items(p, kind) -> list:
    return [i for v in p.vms for i in v.items if i.kind == kind]


def disk_vm(claim="disk1"):
    return vm(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": claim}}])


# --- sizing ---------------------------------------------------------------------------------------

# (source volumeMode, request, status.capacity, mapping, expected size, expected target mode)
SIZING = [
    ("Block", "10Gi", "10244Mi", None, "10244Mi", "Block"),           # Block: the device is the disk: capacity
    ("Filesystem", "20Gi", "21Gi", None, "20Gi", "Filesystem"),       # Filesystem: the image fits the request
    ("Block", "10Gi", None, None, "10Gi", "Block"),                   # not bound yet: the request is all we know
    (None, "5Gi", "6Gi", None, "5Gi", "Filesystem"),                  # no volumeMode is Filesystem
    # CDI's default overhead 0.06, kept free twice (plan.filesystem_size): 512/0.88 = 581.8
    ("Block", "512Mi", "512Mi", StorageMapping("fs", "Filesystem"), "582Mi", "Filesystem"),
    ("Block", "10Gi", "10244Mi", StorageMapping("fs", "Filesystem"), "11641Mi", "Filesystem"),  # 10244/0.88 = 11640.9
    ("Filesystem", "20Gi", "21Gi", StorageMapping("blk", "Block"), "20Gi", "Block"),  # no overhead the other way
    ("Block", "10Gi", "10Gi", StorageMapping("other"), "10Gi", "Block"),  # class only: mode kept, no overhead
]


@pytest.mark.parametrize("mode, requested, capacity, mapping, size, target_mode", SIZING)
def test_datavolume_size(mode, requested, capacity, mapping, size, target_mode):
    storage_map = {"standard": mapping} if mapping else {}
    p = one([disk_vm(), vmi(), pvc("disk1", mode, requested, capacity)], storage_map=storage_map)
    (dv,) = items(p, "DataVolume")
    assert dv.context["storage"]["size"] == size
    assert dv.context["storage"]["volume_mode"] == target_mode
    assert dv.context["storage"]["storage_class"] == (mapping.storage_class if mapping else "standard")


def test_access_modes_kept_unless_mapped():
    objs = [disk_vm(), vmi(), pvc("disk1", access=("ReadWriteMany",))]
    assert items(one(objs), "DataVolume")[0].context["storage"]["access_modes"] == ["ReadWriteMany"]
    mapped = one(objs, storage_map={"standard": StorageMapping("x", None, ("ReadWriteOnce",))})
    assert items(mapped, "DataVolume")[0].context["storage"]["access_modes"] == ["ReadWriteOnce"]


def test_size_falls_back_to_the_datavolume_then_the_template():
    dv_spec = {"storage": {"resources": {"requests": {"storage": "7Gi"}}, "volumeMode": "Block", "storageClassName": "b"}}
    the_vm = vm(volumes=[{"name": "d", "dataVolume": {"name": "dv1"}}],
                spec_extra={"dataVolumeTemplates": [{"metadata": {"name": "dv1"}, "spec": {
                    "pvc": {"resources": {"requests": {"storage": "3Gi"}}}}}]})
    dv = {"kind": "DataVolume", "metadata": {"name": "dv1", "namespace": NS}, "spec": dv_spec}
    from_dv = items(one([the_vm, vmi(), dv]), "DataVolume")[0].context["storage"]
    assert (from_dv["size"], from_dv["volume_mode"], from_dv["storage_class"]) == ("7Gi", "Block", "b")
    from_template = items(one([the_vm, vmi()]), "DataVolume")[0].context["storage"]
    assert (from_template["size"], from_template["volume_mode"]) == ("3Gi", "Filesystem")


def test_the_pvc_of_a_datavolume_is_found_through_its_status():
    the_vm = vm(volumes=[{"name": "d", "dataVolume": {"name": "dv1"}}])
    dv = {"kind": "DataVolume", "metadata": {"name": "dv1", "namespace": NS}, "spec": {},
          "status": {"claimName": "dv1-claim"}}
    p = one([the_vm, vmi(), dv, pvc("dv1-claim", "Block", "1Gi", "2Gi")])
    (item,) = items(p, "DataVolume")
    assert item.name == "dv1" and item.context["storage"]["size"] == "2Gi"
    assert item.context["annotations"]["dlm.kubevirt-tools.io/source"] == f"{NS}/dv1-claim"


def test_missing_pvc_is_not_found_and_says_what_to_export():
    with pytest.raises(NotFound) as exc:
        one([disk_vm(), vmi()])
    assert exc.value.exit_code == errors.NOT_FOUND
    assert "PersistentVolumeClaim src/disk1 (volume d of VirtualMachine src/vm1) not found" in str(exc.value)
    assert "kubectl get vm,vmi,dv,pvc,secret,cm,virtualmachineinstancetypes,virtualmachinepreferences," \
           "controllerrevisions -n src -o yaml" in str(exc.value)


@pytest.mark.parametrize("fixture,missing,resource", [
    ("instancetype-namespaced.yaml", "ControllerRevision", "controllerrevisions"),
    ("instancetype-namespaced.yaml", "VirtualMachineInstancetype", "virtualmachineinstancetypes"),
    ("instancetype-namespaced.yaml", "VirtualMachinePreference", "virtualmachinepreferences"),
    ("instancetype-cluster.yaml", "ControllerRevision", "controllerrevisions"),
])
def test_an_export_without_what_an_instancetype_vm_needs_names_the_kind_to_add(fixture, missing, resource):
    from tests.conftest import FIXTURES, run_cli

    text = (FIXTURES / fixture).read_text()
    from ruamel.yaml import YAML
    doc = YAML(typ="safe", pure=True).load(text)
    kept = [o for o in doc["items"] if o["kind"] != missing]
    if len(kept) == len(doc["items"]):
        pytest.skip(f"{fixture} has no {missing}")
    import json
    result = run_cli(["render", "-f", "-", "--to-namespace", "b", "--connect-url", "192.0.2.20:9185"],
                     stdin=json.dumps({**doc, "items": kept}))
    assert result.code == errors.NOT_FOUND, result.stderr
    assert f"{missing} " in result.stderr and f"add {resource} to the export" in result.stderr


# --- storage classes ------------------------------------------------------------------------------

TARGET = TargetInfo(storage_classes=frozenset({"ceph", "local"}))


def test_unmapped_class_missing_on_the_target_names_the_flag():
    with pytest.raises(UsageError) as exc:
        one([disk_vm(), vmi(), pvc("disk1", sc="gold")], target=TARGET)
    assert exc.value.exit_code == errors.USAGE
    assert exc.value.message == "storage class gold (claim disk1) does not exist on the target"
    assert exc.value.hint == "map it with --storage-class-map gold=<class on the target>; the target has: ceph, local"


def test_mapped_class_missing_on_the_target():
    with pytest.raises(UsageError) as exc:
        one([disk_vm(), vmi(), pvc("disk1", sc="gold")], target=TARGET, storage_map={"gold": StorageMapping("platinum")})
    assert exc.value.message == "storage class platinum (mapped from gold) does not exist on the target"
    assert "--storage-class-map" in exc.value.hint


@pytest.mark.parametrize("target, storage_map", [
    (TARGET, {"gold": StorageMapping("ceph")}),  # mapped to a class the target has
    (TargetInfo(), {}),                          # target unknown (no access): nothing to check against
])
def test_storage_class_accepted(target, storage_map):
    p = one([disk_vm(), vmi(), pvc("disk1", sc="gold")], target=target, storage_map=storage_map)
    assert items(p, "DataVolume")[0].context["storage"]["storage_class"] == (storage_map["gold"].storage_class if storage_map else "gold")


# --- migration ID ---------------------------------------------------------------------------------

def mid(objs, **kw) -> str:
    return one(objs, **kw).vms[0].migration_id


def test_migration_id_is_stable_across_renders():
    objs = [vm(), vmi()]
    assert mid(objs) == mid(objs)
    assert len(mid(objs)) == 16


def test_migration_id_changes_with_the_target():
    objs = [vm(), vmi()]
    assert mid(objs) != mid(objs, target_namespace="elsewhere")
    assert mid(objs) != mid(objs, target_cluster="east")


@pytest.mark.parametrize("migration_state", [
    {"sourceState": {"migrationUID": "vmim-uid-of-failed-attempt"}},
    {"migrationUid": "vmim-uid-of-failed-attempt"},  # the legacy flat field
])
def test_migration_id_changes_after_a_failed_attempt(migration_state):
    before = mid([vm(), vmi()])
    after = mid([vm(), vmi(status_extra={"migrationState": migration_state})])
    assert before != after
    assert after == mid([vm(), vmi(status_extra={"migrationState": migration_state})])


def test_migration_id_changes_with_a_new_vmi():
    assert mid([vm(), vmi(uid="a")]) != mid([vm(), vmi(uid="b")])


def test_our_in_flight_migration_keeps_its_id():
    objs = [vm(), vmi(), vmim("vm1-send-abc", "Scheduling", ours=True, migration_id="abc123")]
    assert mid(objs) == "abc123"


@pytest.mark.parametrize("phase", ["Failed", "Succeeded"])
def test_our_final_migration_does_not_pin_the_id(phase):
    objs = [vm(), vmi(), vmim("vm1-send-abc", phase, ours=True, migration_id="abc123")]
    assert mid(objs) == mid([vm(), vmi()]) != "abc123"


def test_migration_id_flag():
    assert mid([vm(), vmi()], migration_id="mine") == "mine"
    batch = plan(source(vm("a", uid="1"), vmi("a"), vm("b", uid="2"), vmi("b")), ["b", "a"],
                 settings(migration_id="wave1"), TargetInfo())
    assert [(v.vm, v.migration_id) for v in batch.vms] == [("a", "wave1-a"), ("b", "wave1-b")]


def test_batch_ids_are_distinct_and_objects_named_after_them():
    p = plan(source(vm("a", uid="1"), vmi("a", uid="x"), vm("b", uid="2"), vmi("b", uid="y")), ["a", "b"],
             settings(), TargetInfo())
    ids = [v.migration_id for v in p.vms]
    assert len(set(ids)) == 2
    for v in p.vms:
        names = [i.name for i in v.items if i.kind == "VirtualMachineInstanceMigration"]
        assert names == [f"{v.vm}-receive-{v.migration_id[:8]}", f"{v.vm}-send-{v.migration_id[:8]}"]


# --- the target VM --------------------------------------------------------------------------------

def target_vm(p):
    (item,) = items(p, "VirtualMachine")
    return item


@pytest.mark.parametrize("spec, expected", [
    ({"runStrategy": "RerunOnFailure"}, "RerunOnFailure"),
    ({"runStrategy": "Manual"}, "Manual"),
    ({"running": True}, "Always"),
    ({"running": False}, "Halted"),
])
def test_restore_run_strategy(spec, expected):
    assert restore_run_strategy({"spec": spec}) == expected


def test_target_vm_spec():
    the_vm = vm(spec_extra={"running": True})
    del the_vm["spec"]["runStrategy"]
    the_vm["metadata"]["annotations"] = {"kubevirt.io/latest-observed-api-version": "v1", "note": "kept",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    the_vm["spec"]["template"]["metadata"] = {"creationTimestamp": None, "labels": {"a": "b"}}
    item = target_vm(one([the_vm, vmi()]))
    spec = item.context["spec"]
    assert "running" not in spec and "runStrategy" not in spec  # the template writes WaitAsReceiver first
    assert spec["template"]["metadata"] == {"labels": {"a": "b"}}
    assert item.context["annotations"]["kubevirt.io/restore-run-strategy"] == "Always"
    assert item.context["annotations"]["note"] == "kept"
    assert "kubevirt.io/latest-observed-api-version" not in item.context["annotations"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in item.context["annotations"]
    tspec = spec["template"]["spec"]
    assert tspec["domain"]["firmware"] == {"uuid": "uuid-from-vmi"}
    assert tspec["domain"]["devices"]["interfaces"] == [{"name": "default", "masquerade": {}, "macAddress": "02:00:00:00:00:01"}]


def test_identity_already_in_the_vm_spec_is_not_overwritten():
    the_vm = vm(interfaces=[{"name": "default", "masquerade": {}, "macAddress": "02:11:11:11:11:11"}])
    the_vm["spec"]["template"]["spec"]["domain"]["firmware"] = {"uuid": "uuid-in-vm"}
    tspec = target_vm(one([the_vm, vmi()])).context["spec"]["template"]["spec"]
    assert tspec["domain"]["firmware"]["uuid"] == "uuid-in-vm"
    assert tspec["domain"]["devices"]["interfaces"][0]["macAddress"] == "02:11:11:11:11:11"


def test_the_source_objects_are_not_modified():
    objs = [vm(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "disk1"}}]), vmi(), pvc("disk1")]
    s = source(*objs)
    before = copy.deepcopy(s.objects)
    plan(s, ["vm1"], settings(claim_map={"disk1": "disk2"}), TargetInfo())
    assert s.objects == before


def test_long_vm_names_make_valid_label_values():
    name = "x" * 80
    value = label_value(name)
    assert len(value) == 63 and value.startswith("x" * 54 + "-")
    assert label_value(name) == value and label_value("y" * 80) != value
    assert label_value("short") == "short"


def test_a_secret_shared_by_two_vms_is_copied_once():
    shared = {"kind": "Secret", "metadata": {"name": "s", "namespace": NS}, "type": "Opaque", "data": {"k": "dg=="}}
    vol = [{"name": "c", "cloudInitNoCloud": {"secretRef": {"name": "s"}}}]
    p = plan(source(vm("a", vol, uid="1"), vmi("a"), vm("b", vol, uid="2"), vmi("b"), shared), ["a", "b"],
             settings(), TargetInfo())
    assert [(i.vm, i.name) for i in items(p, "Secret")] == [("a", "s")]


def test_secrets_reference_mode_lists_instead_of_copying():
    secret = {"kind": "Secret", "metadata": {"name": "s", "namespace": NS}, "type": "kubernetes.io/tls",
              "data": {"tls.key": "c2VjcmV0", "tls.crt": "Y2VydA=="}}
    p = one([vm(volumes=[{"name": "t", "secret": {"secretName": "s"}}]), vmi(), secret], secrets="reference")
    assert items(p, "Secret") == []
    (ref,) = p.vms[0].secret_refs
    assert (ref.name, ref.type, ref.keys, ref.used_by, ref.target_namespace) == \
        ("s", "kubernetes.io/tls", ("tls.crt", "tls.key"), ("volume t (secret)",), DST)


def test_missing_secret_is_not_found():
    with pytest.raises(NotFound) as exc:
        one([vm(volumes=[{"name": "t", "secret": {"secretName": "gone"}}]), vmi()])
    assert exc.value.message == "Secret src/gone, used by VirtualMachine src/vm1 (volume t (secret)), not found"


# --- refusals and checks --------------------------------------------------------------------------

def refusal(objs, live=False) -> str:
    with pytest.raises(Refused) as exc:
        plan(source(*objs, live=live), ["vm1"], settings(), TargetInfo())
    assert exc.value.exit_code == errors.REFUSED
    return exc.value.message


def test_live_vm_without_vmi_is_refused():
    assert refusal([vm()], live=True) == (
        "cannot migrate VirtualMachine src/vm1: it is not running (no VirtualMachineInstance); DLM moves running VMs only")


def test_exported_vm_without_vmi_renders_with_a_warning():
    p = one([vm()])
    assert p.vms[0].warnings[0].startswith("the input has no VirtualMachineInstance for src/vm1")


@pytest.mark.parametrize("conditions, refused", [
    ([{"type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable", "message": "rwo"}], False),
    ([{"type": "LiveMigratable", "status": "False", "reason": "HostDeviceNotLiveMigratable", "message": "gpu "}], True),
    ([{"type": "StorageLiveMigratable", "status": "False", "reason": "NotMigratable", "message": "no"}], True),
    ([{"type": "LiveMigratable", "status": "True"}, {"type": "Ready", "status": "False"}], False),
])
def test_migratable_conditions(conditions, refused):
    objs = [vm(), vmi(conditions=conditions)]
    if refused:
        message = refusal(objs)
        c = conditions[0]
        assert f"({c['reason']}: {c['message'].strip()})" in message
    else:
        assert one(objs).vms[0].vm == "vm1"


def test_a_receiving_vm_is_refused():
    the_vm = vm()
    the_vm["spec"]["runStrategy"] = "WaitAsReceiver"
    assert "runStrategy WaitAsReceiver" in refusal([the_vm, vmi()])


@pytest.mark.parametrize("phase, ours, refused", [
    ("Running", False, True), ("Pending", False, True), (None, False, True),
    ("Succeeded", False, False), ("Failed", False, False), ("Running", True, False),
])
def test_existing_migrations(phase, ours, refused):
    existing = vmim("other", phase, ours=ours, migration_id="m1" if ours else None)
    if phase is None:
        del existing["status"]
    objs = [vm(), vmi(), existing, vmim("unrelated", "Running", vmi_name="another-vm")]
    if refused:
        assert refusal(objs) == (f"cannot migrate VirtualMachine src/vm1: migration other is already {phase or 'Pending'} "
                                 "for it; wait for it to finish or delete it")
    else:
        one(objs)


def test_target_equal_to_source_is_a_usage_error():
    with pytest.raises(UsageError) as exc:
        one([vm(), vmi()], target_namespace=NS)
    assert "--to-namespace" in exc.value.hint


def test_unknown_vm_is_not_found():
    with pytest.raises(NotFound):
        one([vm(), vmi()], names=["nope"])


def test_no_connect_url_skips_the_send_phase_and_says_how():
    p = one([vm(), vmi()], connect_url=None)
    assert [i.phase for i in p.vms[0].items] == ["prepare", "receive"]
    assert "--connect-url" in p.vms[0].warnings[-1] and "synchronizationAddresses" in p.vms[0].warnings[-1]


def test_connect_url_from_the_target_kubevirt():
    p = one([vm(), vmi()], connect_url=None, target=TargetInfo(sync_addresses=("10.0.0.5:9185", "10.0.0.6:9185")))
    send = [i for i in p.vms[0].items if i.phase == "send"][0]
    assert send.context["connect_url"] == "10.0.0.5:9185" and send.side == "source" and send.namespace == NS


# --- instancetype revisions -----------------------------------------------------------------------

def test_revision_recorded_only_in_status_is_copied_and_pinned():
    it = {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineInstancetype",
          "metadata": {"name": "small", "namespace": NS}, "spec": {"cpu": {"guest": 1}, "memory": {"guest": "1Gi"}}}
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "vm1-small-rev", "namespace": NS},
           "data": {"spec": "x"}, "revision": 1}
    source_vm = vm(spec_extra={"instancetype": {"kind": "VirtualMachineInstancetype", "name": "small"}})
    source_vm["status"] = {"instancetypeRef": {"kind": "VirtualMachineInstancetype", "name": "small",
                                               "controllerRevisionRef": {"name": "vm1-small-rev"}}}
    p = one([source_vm, vmi(), it, rev])
    assert [i.name for i in items(p, "ControllerRevision")] == ["vm1-small-rev"]
    target_vm = items(p, "VirtualMachine")[0]
    assert target_vm.context["spec"]["instancetype"] == {"kind": "VirtualMachineInstancetype", "name": "small",
                                                          "revisionName": "vm1-small-rev"}


def test_data_volume_template_follows_the_storage_mapping():
    template = {"metadata": {"name": "root"},
                "spec": {"source": {"registry": {"url": "docker://example/img"}},
                         "storage": {"storageClassName": "fast-block", "volumeMode": "Block",
                                     "resources": {"requests": {"storage": "10Gi"}}}}}
    source_vm = vm(volumes=[{"name": "d", "dataVolume": {"name": "root"}}], spec_extra={"dataVolumeTemplates": [template]})
    mapping = {"fast-block": StorageMapping("cephfs", volume_mode="Filesystem")}
    p = one([source_vm, vmi(), pvc("root", mode="Block", request="10Gi", capacity="10Gi", sc="fast-block")],
            storage_map=mapping)
    dvt = items(p, "VirtualMachine")[0].context["spec"]["dataVolumeTemplates"][0]["spec"]["storage"]
    assert (dvt["storageClassName"], dvt["volumeMode"]) == ("cephfs", "Filesystem")
    disk = items(p, "DataVolume")[0].context["storage"]
    assert (disk["storage_class"], disk["volume_mode"]) == ("cephfs", "Filesystem")
    # the source object is never changed
    assert template["spec"]["storage"]["storageClassName"] == "fast-block"


@pytest.mark.parametrize("overhead, size", [(0.06, "582Mi"), (0.1, "641Mi")])
def test_block_onto_filesystem_leaves_the_targets_filesystem_overhead(overhead, size):
    mapping = {"fast-block": StorageMapping("cephfs", volume_mode="Filesystem")}
    p = one([disk_vm(), vmi(), pvc("disk1", mode="Block", request="512Mi", capacity="512Mi", sc="fast-block")],
            storage_map=mapping, fs_overhead=overhead)
    # 512Mi / (1 - 2 * overhead), rounded up: the blank image holds the whole disk (upstream's e2e needed 564Mi)
    assert items(p, "DataVolume")[0].context["storage"]["size"] == size
    assert p.vms[0].notes == [f"disk disk1: Block 512Mi onto Filesystem, requested as {size} with filesystem overhead "
                              f"{overhead:g} (--fs-overhead)"]


@pytest.mark.parametrize("target, storage_class, overhead, where", [
    (TargetInfo(), "cephfs", 0.06, "CDI's default since v1.64.0; the target CDIConfig was not read: "
                                   "the target cluster was not contacted"),
    (TargetInfo(fs_overhead_global=0.08, cdi_error=""), "cephfs", 0.08,
     "the target CDIConfig's status.filesystemOverhead.global"),
    (TargetInfo(fs_overhead_global=0.08, fs_overhead_classes=(("cephfs", 0.1),), cdi_error=""), "cephfs", 0.1,
     "the target CDIConfig's status.filesystemOverhead.storageClass[cephfs]"),
    # no class on the disk: CDI uses the target's default class (CDI pkg/controller/common/util.go:646-653)
    (TargetInfo(fs_overhead_global=0.08, fs_overhead_classes=(("cephfs", 0.1),), default_storage_class="cephfs",
                cdi_error=""), None, 0.1, "the target CDIConfig's status.filesystemOverhead.storageClass[cephfs]"),
])
def test_filesystem_overhead_comes_from_the_target_cdiconfig(target, storage_class, overhead, where):
    from kubectl_dlm.plan import filesystem_overhead

    assert filesystem_overhead(settings(), target, storage_class) == (overhead, where)
    assert filesystem_overhead(settings(fs_overhead=0.2), target, storage_class) == (0.2, "--fs-overhead")


@pytest.mark.parametrize("strategy_spec, declared", [({"runStrategy": "Manual"}, "Manual"), ({"running": True}, "Always")])
def test_after_state_of_a_move_back_keeps_the_users_metadata_and_drops_ours(strategy_spec, declared):
    """A VM that an earlier move created carries our labels and the Argo CD/Flux hand-off annotations
    live; its after-state keeps only what the user declared, with the run strategy KubeVirt restores."""
    moved = vm(spec_extra=strategy_spec)
    if "running" in strategy_spec:
        del moved["spec"]["runStrategy"]
    moved["metadata"]["labels"] = {"app": "db", "app.kubernetes.io/managed-by": "kubectl-dlm",
                                   "dlm.kubevirt-tools.io/migration-id": "old"}
    moved["metadata"]["annotations"] = {"team": "a", "argocd.argoproj.io/sync-options": "Prune=false",
                                        "argocd.argoproj.io/compare-options": "ServerSideDiff=true",
                                        "kubevirt.io/restore-run-strategy": "Always", "dlm.kubevirt-tools.io/phase": "prepare"}
    settings = Settings(source_namespace=NS, target_namespace="other")
    vm_plan = plan(source(moved, vmi()), ["vm1"], settings, TargetInfo()).vms[0]
    [after] = vm_plan.after
    assert (after.kind, after.namespace, after.template) == ("VirtualMachine", "other", "virtualmachine-after.yaml.j2")
    assert after.context["run_strategy"] == declared
    assert after.context["labels"] == {"app": "db"}
    # the user's own Argo CD option stays; ours (same value as HANDS_OFF) goes
    assert after.context["annotations"] == {"team": "a", "argocd.argoproj.io/compare-options": "ServerSideDiff=true"}
    receiving = next(i for i in vm_plan.items if i.kind == "VirtualMachine")
    assert after.context["spec"] == receiving.context["spec"]
    assert receiving.context["annotations"]["argocd.argoproj.io/compare-options"] == "IgnoreExtraneous"
