"""What a VM references: claims, Secrets, ConfigMaps, instancetypes, networks, and what DLM cannot move.

Pure functions over the VM (and its running VMI); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from kubectl_dlm.model import Obj

NAMESPACED_INSTANCETYPE_KINDS = {"virtualmachineinstancetype": "VirtualMachineInstancetype"}
NAMESPACED_PREFERENCE_KINDS = {"virtualmachinepreference": "VirtualMachinePreference"}

# The Secrets and ConfigMaps a batch references are read by name (a GET each) up to this many per kind
# and namespace: RBAC can then narrow the access to those objects (resourceNames), and a LIST would
# read every Secret of the namespace. Above it, one LIST of the kind (pages of 500) costs less than a
# GET per name, where the user may list; a refused LIST falls back to the GETs (kube.read_named).
BY_NAME_MAX = 16
# GETs in flight at once when objects are read by name: the round trips to a remote API server
# overlap, and the client's connection pool keeps about this many.
NAMED_WORKERS = 8


@dataclass(frozen=True)
class Claim:
    volume: str  # the volume name in the VM spec (must not change: DLM matches volumes by name)
    claim: str  # the DataVolume / PVC name
    via: str  # "dataVolume" or "persistentVolumeClaim"
    hotplugged: bool = False


@dataclass
class References:
    claims: List[Claim] = field(default_factory=list)
    secrets: Dict[str, List[str]] = field(default_factory=dict)  # name -> where it is used
    configmaps: Dict[str, List[str]] = field(default_factory=dict)
    service_accounts: List[str] = field(default_factory=list)
    multus_networks: List[Tuple[str, str]] = field(default_factory=list)  # (network name, multus networkName)
    instancetype: Optional[Tuple[str, str, str]] = None  # (kind, name, revisionName)
    preference: Optional[Tuple[str, str, str]] = None
    unsupported: List[str] = field(default_factory=list)
    persistent_state: List[str] = field(default_factory=list)


def template_spec(vm: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}


def vmi_only_hotplug_volumes(vm: Obj, vmi: Optional[Obj]) -> List[Mapping[str, Any]]:
    """Volumes hotplugged into the running VMI without being persisted into the VM spec."""
    if not vmi:
        return []
    known = {v.get("name") for v in template_spec(vm).get("volumes") or []}
    volumes = (vmi.get("spec") or {}).get("volumes") or []
    return [v for v in volumes if v.get("name") not in known and _is_hotplug(v)]


def _is_hotplug(volume: Mapping[str, Any]) -> bool:
    for key in ("dataVolume", "persistentVolumeClaim"):
        if (volume.get(key) or {}).get("hotpluggable"):
            return True
    return False


def _add(table: Dict[str, List[str]], name: Optional[str], where: str) -> None:
    if name:
        table.setdefault(name, []).append(where)


def references(vm: Obj, vmi: Optional[Obj] = None) -> References:
    spec = template_spec(vm)
    refs = References()
    volumes = list(spec.get("volumes") or []) + vmi_only_hotplug_volumes(vm, vmi)
    for vol in volumes:
        name = vol.get("name", "")
        where = f"volume {name}"
        if "dataVolume" in vol:
            refs.claims.append(Claim(name, vol["dataVolume"].get("name", ""), "dataVolume", _is_hotplug(vol)))
        if "persistentVolumeClaim" in vol:
            pvc = vol["persistentVolumeClaim"]
            refs.claims.append(Claim(name, pvc.get("claimName", ""), "persistentVolumeClaim", _is_hotplug(vol)))
        if "ephemeral" in vol:
            refs.unsupported.append(f"{where} is an ephemeral overlay on PVC {vol['ephemeral'].get('persistentVolumeClaim', {}).get('claimName', '?')}; its writes cannot be migrated")
        for cloud_init in ("cloudInitNoCloud", "cloudInitConfigDrive"):
            ci = vol.get(cloud_init) or {}
            _add(refs.secrets, (ci.get("secretRef") or {}).get("name"), f"{where} ({cloud_init}.secretRef)")
            _add(refs.secrets, (ci.get("networkDataSecretRef") or {}).get("name"), f"{where} ({cloud_init}.networkDataSecretRef)")
        _add(refs.secrets, (vol.get("secret") or {}).get("secretName"), f"{where} (secret)")
        _add(refs.configmaps, (vol.get("configMap") or {}).get("name"), f"{where} (configMap)")
        sysprep = vol.get("sysprep") or {}
        _add(refs.secrets, (sysprep.get("secret") or {}).get("name"), f"{where} (sysprep.secret)")
        _add(refs.configmaps, (sysprep.get("configMap") or {}).get("name"), f"{where} (sysprep.configMap)")
        _add(refs.secrets, (vol.get("containerDisk") or {}).get("imagePullSecret"), f"{where} (containerDisk.imagePullSecret)")
        if "serviceAccount" in vol:
            refs.service_accounts.append(vol["serviceAccount"].get("serviceAccountName", ""))
        if "hostDisk" in vol:
            refs.unsupported.append(f"{where} is a hostDisk (a file on the source node); DLM cannot copy it")
    for i, cred in enumerate(spec.get("accessCredentials") or []):
        for kind in ("sshPublicKey", "userPassword"):
            secret = ((cred.get(kind) or {}).get("source") or {}).get("secret") or {}
            _add(refs.secrets, secret.get("secretName"), f"accessCredentials[{i}].{kind}")
    for net in spec.get("networks") or []:
        if "multus" in net:
            refs.multus_networks.append((net.get("name", ""), net["multus"].get("networkName", "")))
    devices = (spec.get("domain") or {}).get("devices") or {}
    for disk in devices.get("disks") or []:
        if disk.get("shareable"):
            refs.unsupported.append(f"disk {disk.get('name')} is shareable; DLM cannot keep several writers consistent")
        if "lun" in disk:
            refs.unsupported.append(f"disk {disk.get('name')} is a LUN; the target cannot be guaranteed to be a LUN")
    for fs in devices.get("filesystems") or []:
        refs.unsupported.append(f"filesystem {fs.get('name')} uses virtiofs, which cannot be live migrated")
    if (devices.get("tpm") or {}).get("persistent"):
        refs.persistent_state.append("persistent TPM")
    efi = (((spec.get("domain") or {}).get("firmware") or {}).get("bootloader") or {}).get("efi") or {}
    if efi.get("persistent"):
        refs.persistent_state.append("persistent EFI")
    vm_spec = vm.get("spec") or {}
    status = vm.get("status") or {}
    refs.instancetype = _matcher(vm_spec.get("instancetype"), status.get("instancetypeRef"), "VirtualMachineClusterInstancetype")
    refs.preference = _matcher(vm_spec.get("preference"), status.get("preferenceRef"), "VirtualMachineClusterPreference")
    return refs


def _matcher(matcher: Optional[Mapping[str, Any]], status_ref: Optional[Mapping[str, Any]],
             default_kind: str) -> Optional[Tuple[str, str, str]]:
    """(kind, name, revision). The revision is the pinned revisionName, else the ControllerRevision
    the VM controller recorded in status (newer KubeVirt records it only there)."""
    if not matcher or not matcher.get("name"):
        return None
    revision = matcher.get("revisionName") or ((status_ref or {}).get("controllerRevisionRef") or {}).get("name") or ""
    return (matcher.get("kind") or default_kind, matcher["name"], revision)


def lists_named(count: int) -> bool:
    """Read `count` named objects of one kind in one namespace with one LIST instead of a GET each?"""
    return count > BY_NAME_MAX


def namespaced_kind(kind: str) -> Optional[str]:
    """The canonical namespaced kind for an instancetype/preference matcher kind, or None if cluster-scoped."""
    lower = kind.lower()
    return NAMESPACED_INSTANCETYPE_KINDS.get(lower) or NAMESPACED_PREFERENCE_KINDS.get(lower)
