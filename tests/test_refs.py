"""refs.py: what a VM references, and what DLM cannot move, from small VM dicts."""

from __future__ import annotations

import pytest

from kubectl_dlm.refs import BY_NAME_MAX, Claim, lists_named, namespaced_kind, references, vmi_only_hotplug_volumes


def vm(volumes=(), devices=None, domain=None, spec=None, template_extra=None):
    tspec = {"domain": dict(domain or {}, devices=devices or {}), "volumes": list(volumes)}
    tspec.update(template_extra or {})
    return {"kind": "VirtualMachine", "metadata": {"name": "v"}, "spec": dict(spec or {}, template={"spec": tspec})}


# volume -> (secrets, configmaps) it references, with where they are used
VOLUMES = [
    ({"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "ud"}, "networkDataSecretRef": {"name": "nd"}}},
     {"ud": ["volume ci (cloudInitNoCloud.secretRef)"], "nd": ["volume ci (cloudInitNoCloud.networkDataSecretRef)"]}, {}),
    ({"name": "cd", "cloudInitConfigDrive": {"secretRef": {"name": "ud"}, "networkDataSecretRef": {"name": "nd"}}},
     {"ud": ["volume cd (cloudInitConfigDrive.secretRef)"], "nd": ["volume cd (cloudInitConfigDrive.networkDataSecretRef)"]}, {}),
    ({"name": "inline", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}, {}, {}),
    ({"name": "s", "secret": {"secretName": "tls"}}, {"tls": ["volume s (secret)"]}, {}),
    ({"name": "c", "configMap": {"name": "cfg"}}, {}, {"cfg": ["volume c (configMap)"]}),
    ({"name": "sp", "sysprep": {"secret": {"name": "unattend"}}}, {"unattend": ["volume sp (sysprep.secret)"]}, {}),
    ({"name": "sp", "sysprep": {"configMap": {"name": "unattend"}}}, {}, {"unattend": ["volume sp (sysprep.configMap)"]}),
    ({"name": "cd", "containerDisk": {"image": "x", "imagePullSecret": "pull"}},
     {"pull": ["volume cd (containerDisk.imagePullSecret)"]}, {}),
    ({"name": "cd", "containerDisk": {"image": "x"}}, {}, {}),
    ({"name": "e", "emptyDisk": {"capacity": "1Gi"}}, {}, {}),
]


@pytest.mark.parametrize("volume, secrets, configmaps", VOLUMES)
def test_volume_references(volume, secrets, configmaps):
    refs = references(vm([volume]))
    assert refs.secrets == secrets
    assert refs.configmaps == configmaps
    assert refs.claims == [] and refs.unsupported == []


def test_access_credentials():
    creds = [{"sshPublicKey": {"source": {"secret": {"secretName": "keys"}}, "propagationMethod": {"noCloud": {}}}},
             {"userPassword": {"source": {"secret": {"secretName": "pw"}}, "propagationMethod": {"qemuGuestAgent": {}}}},
             {"sshPublicKey": {"source": {"secret": {"secretName": "keys"}}}}]
    refs = references(vm(template_extra={"accessCredentials": creds}))
    assert refs.secrets == {"keys": ["accessCredentials[0].sshPublicKey", "accessCredentials[2].sshPublicKey"],
                            "pw": ["accessCredentials[1].userPassword"]}


def test_claims_keep_volume_and_claim_names():
    refs = references(vm([{"name": "root", "dataVolume": {"name": "dv"}},
                          {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
                          {"name": "hp", "persistentVolumeClaim": {"claimName": "hp-pvc", "hotpluggable": True}}]))
    assert refs.claims == [Claim("root", "dv", "dataVolume"), Claim("data", "pvc", "persistentVolumeClaim"),
                           Claim("hp", "hp-pvc", "persistentVolumeClaim", hotplugged=True)]


def test_vmi_only_hotplug_volumes():
    the_vm = vm([{"name": "root", "dataVolume": {"name": "dv"}}])
    vmi = {"spec": {"volumes": [{"name": "root", "dataVolume": {"name": "dv"}},
                                {"name": "hot", "dataVolume": {"name": "hot-dv", "hotpluggable": True}},
                                {"name": "cloudinit", "cloudInitNoCloud": {"userData": "x"}}]}}
    assert vmi_only_hotplug_volumes(the_vm, vmi) == [{"name": "hot", "dataVolume": {"name": "hot-dv", "hotpluggable": True}}]
    assert vmi_only_hotplug_volumes(the_vm, None) == []
    assert references(the_vm, vmi).claims[-1] == Claim("hot", "hot-dv", "dataVolume", hotplugged=True)


def test_multus_networks_and_service_accounts():
    refs = references(vm([{"name": "sa", "serviceAccount": {"serviceAccountName": "robot"}}],
                         template_extra={"networks": [{"name": "default", "pod": {}},
                                                      {"name": "lan", "multus": {"networkName": "ns1/lan"}}]}))
    assert refs.multus_networks == [("lan", "ns1/lan")]
    assert refs.service_accounts == ["robot"]


UNSUPPORTED = [
    (vm(devices={"disks": [{"name": "q", "shareable": True, "disk": {}}]}),
     "disk q is shareable; DLM cannot keep several writers consistent"),
    (vm(devices={"disks": [{"name": "l", "lun": {}}]}), "disk l is a LUN; the target cannot be guaranteed to be a LUN"),
    (vm(devices={"filesystems": [{"name": "fs", "virtiofs": {}}]}),
     "filesystem fs uses virtiofs, which cannot be live migrated"),
    (vm([{"name": "h", "hostDisk": {"path": "/x", "type": "Disk"}}]),
     "volume h is a hostDisk (a file on the source node); DLM cannot copy it"),
    (vm([{"name": "eph", "ephemeral": {"persistentVolumeClaim": {"claimName": "golden"}}}]),
     "volume eph is an ephemeral overlay on PVC golden; its writes cannot be migrated"),
]


@pytest.mark.parametrize("the_vm, reason", UNSUPPORTED)
def test_unsupported(the_vm, reason):
    assert references(the_vm).unsupported == [reason]


def test_shareable_false_is_fine():
    assert references(vm(devices={"disks": [{"name": "q", "shareable": False, "disk": {}}]})).unsupported == []


@pytest.mark.parametrize("devices, domain, state", [
    ({"tpm": {"persistent": True}}, {}, ["persistent TPM"]),
    ({"tpm": {}}, {}, []),
    ({}, {"firmware": {"bootloader": {"efi": {"persistent": True}}}}, ["persistent EFI"]),
    ({}, {"firmware": {"bootloader": {"efi": {"secureBoot": True}}}}, []),
])
def test_persistent_state(devices, domain, state):
    assert references(vm(devices=devices, domain=domain)).persistent_state == state


@pytest.mark.parametrize("matcher, expected", [
    ({"name": "u1.small"}, ("VirtualMachineClusterInstancetype", "u1.small", "")),
    ({"name": "mine", "kind": "VirtualMachineInstancetype", "revisionName": "r1"}, ("VirtualMachineInstancetype", "mine", "r1")),
    (None, None),
])
def test_instancetype_matcher(matcher, expected):
    spec = {"instancetype": matcher} if matcher else {}
    assert references(vm(spec=spec)).instancetype == expected


def test_preference_default_kind_is_cluster_scoped():
    assert references(vm(spec={"preference": {"name": "fedora"}})).preference == ("VirtualMachineClusterPreference", "fedora", "")


@pytest.mark.parametrize("kind, canonical", [
    ("VirtualMachineInstancetype", "VirtualMachineInstancetype"),
    ("virtualmachineinstancetype", "VirtualMachineInstancetype"),
    ("VirtualMachinePreference", "VirtualMachinePreference"),
    ("VirtualMachineClusterInstancetype", None),
    ("VirtualMachineClusterPreference", None),
])
def test_namespaced_kind(kind, canonical):
    assert namespaced_kind(kind) == canonical


@pytest.mark.parametrize("count, lists", [
    (0, False), (1, False), (2, False),  # one VM: its Secrets by name (RBAC resourceNames suffice)
    (BY_NAME_MAX, False),  # as many GETs as a LIST of ~1000 Secrets costs (measured, refs.BY_NAME_MAX)
    (BY_NAME_MAX + 1, True), (1000, True),  # a big batch: one LIST where the user may list
])
def test_named_objects_are_listed_only_for_a_big_batch(count, lists):
    assert lists_named(count) is lists
