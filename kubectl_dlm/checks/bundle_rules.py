"""The per-VM rows (pure) about what the bundle creates and copies: names already taken, MAC
addresses in use, referenced objects, copies that differ, and whether it can be planned at all.

Secrets are compared by the SHA-256 of their data and named by their keys only.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, List, Optional, Tuple

from kubectl_dlm import retire
from kubectl_dlm.checks.facts import CLUSTER_KINDS, COLLISION_KINDS, FAIL, PASS, UNKNOWN, WARN, Check, Facts
from kubectl_dlm.errors import DlmError
from kubectl_dlm.model import LABEL_MIGRATION_ID, MANAGED_BY, MANAGER, Obj, meta
from kubectl_dlm.refs import References, namespaced_kind, template_spec


def _created(facts: Facts, name: str, vm_plan: Any, refs: References) -> List[Tuple[str, str, str, str]]:
    """(side, kind, namespace, name) of what the bundle creates and KubeVirt/CDI create for it."""
    from kubectl_dlm.plan import map_claim

    s = facts.settings
    out: List[Tuple[str, str, str, str]] = []
    if vm_plan is not None and not isinstance(vm_plan, DlmError):
        for item in vm_plan.items:
            if item.kind in COLLISION_KINDS:
                out.append((item.side, item.kind, item.namespace, item.name))
            if item.kind == "DataVolume":
                out.append((item.side, "PersistentVolumeClaim", item.namespace, item.name))
        return out
    out.append(("target", "VirtualMachine", s.target_namespace, name))
    for claim in refs.claims:
        for kind in ("DataVolume", "PersistentVolumeClaim"):
            out.append(("target", kind, s.target_namespace, map_claim(claim.claim, s)))
    return out


def _is_ours(obj: Obj, migration_id: str, found: Dict[Tuple[str, str, str], Obj]) -> Optional[bool]:
    """True: this migration's; False: someone else's; None: an earlier attempt of ours."""
    labels = meta(obj).get("labels") or {}
    if labels.get(LABEL_MIGRATION_ID) == migration_id:
        return True
    for ref in meta(obj).get("ownerReferences") or []:  # a PVC its (our) DataVolume made
        owner = found.get((ref.get("kind", ""), meta(obj).get("namespace", ""), ref.get("name", "")))
        if owner is not None and (meta(owner).get("labels") or {}).get(LABEL_MIGRATION_ID) == migration_id:
            return True
    if labels.get(MANAGED_BY) == MANAGER and labels.get(LABEL_MIGRATION_ID):
        return None
    return False


def check_collisions(facts: Facts, name: str, vm_plan: Any, refs: References, migration_id: str, scope: str) -> Check:
    check = "name-collisions"
    s = facts.settings
    taken, reused, leftovers, retired = [], [], [], []
    if facts.namespace_exists is None:
        return Check(check, UNKNOWN, f"could not verify: {facts.namespace_error or 'the target was not read'}", "", scope)
    for side, kind, ns, obj_name in _created(facts, name, vm_plan, refs):
        if side == "source":
            obj = facts.source.get(kind, ns, obj_name)
        else:
            if kind in facts.lookup_errors:
                return Check(check, UNKNOWN, f"could not verify: cannot list {kind}s in namespace {ns} on the target: "
                                             f"{facts.lookup_errors[kind]}", "", scope)
            obj = facts.found.get((kind, ns, obj_name))
        if obj is None:
            continue
        ours = _is_ours(obj, migration_id, facts.found)
        where = f"{kind} {ns}/{obj_name}" + (" on the source" if side == "source" else "")
        if ours is not True and retire.is_retired(obj):
            retired.append(where)  # the stale copy an earlier move left: a move back replaces it
        elif ours is True:
            reused.append(where)
        elif ours is None:
            leftovers.append((where, (meta(obj).get("labels") or {}).get(LABEL_MIGRATION_ID)))
        else:
            taken.append(where)
    if taken or leftovers:
        reason = "; ".join([f"{w} already exists and is not part of this migration" for w in taken]
                           + [f"{w} is left over from an earlier attempt (migration-id {i})" for w, i in leftovers])
        fix = ("delete or rename what is in the way, or choose another --to-namespace" if taken else "") + \
              ("; " if taken and leftovers else "") + \
              (f"remove the earlier attempt: kubectl dlm cleanup {name} -n {s.source_namespace}" if leftovers else "")
        return Check(check, FAIL, reason, fix, scope)
    if retired:
        return Check(check, WARN, f"the retired copy of an earlier move is where this one goes: {', '.join(retired)}",
                     "`kubectl dlm migrate --replace-retired` deletes it after confirmation (add --keep-retired-disks "
                     "to keep its disks and give the new ones other claim names)", scope)
    if reused:
        return Check(check, PASS, f"nothing in the way; {len(reused)} object(s) of this migration already exist "
                                  f"and will be reused: {', '.join(reused)}", "", scope)
    return Check(check, PASS, "nothing on the target has the names the bundle creates", "", scope)


_MAC = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$")


def _macs(obj: Obj) -> Dict[str, str]:
    """mac (lower case) -> interface name, from a VM's template or a VMI's spec and status."""
    found: Dict[str, str] = {}
    spec = template_spec(obj) if obj.get("kind") == "VirtualMachine" else (obj.get("spec") or {})
    for iface in ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []:
        if iface.get("macAddress"):
            found[iface["macAddress"].lower().replace("-", ":")] = iface.get("name", "?")
    if obj.get("kind") == "VirtualMachineInstance":
        for iface in (obj.get("status") or {}).get("interfaces") or []:
            if iface.get("mac"):
                found.setdefault(iface["mac"].lower().replace("-", ":"), iface.get("name", "?"))
    return {mac: n for mac, n in found.items() if _MAC.match(mac)}


def check_macs(facts: Facts, vm: Obj, vmi: Optional[Obj], migration_id: str, scope: str) -> Check:
    check = "mac-addresses"
    mine = _macs(vm)
    if vmi is not None:
        mine.update(_macs(vmi))
    if not mine:
        return Check(check, PASS, "no fixed MAC address (the target assigns its own)", "", scope)
    if facts.target_machines is None:
        return Check(check, UNKNOWN, "could not verify: cannot list VirtualMachines/VirtualMachineInstances in all "
                                     f"namespaces of the target: {facts.target_machines_error or 'no access'}", "", scope)
    s = facts.settings
    skip = set()
    if facts.same_cluster:
        skip.add((s.source_namespace, meta(vm).get("name")))  # the VM itself
    for obj in facts.target_machines:
        if obj.get("kind") == "VirtualMachine" and _is_ours(obj, migration_id, {}) is True:
            skip.add((meta(obj).get("namespace"), meta(obj).get("name")))  # our receiving VM and its VMI
        if obj.get("kind") == "VirtualMachine" and retire.is_retired(obj) and \
                (meta(obj).get("namespace"), meta(obj).get("name")) == (s.target_namespace, meta(vm).get("name")):
            skip.add((s.target_namespace, meta(vm).get("name")))  # this VM's retired copy: replaced by the move
    clashes = []
    for obj in facts.target_machines:
        key = (meta(obj).get("namespace"), meta(obj).get("name"))
        if key in skip:
            continue
        for mac in sorted(set(_macs(obj)) & set(mine)):
            clashes.append(f"{mac} (interface {mine[mac]}) is used by {obj.get('kind')} {key[0]}/{key[1]}")
    if clashes:
        return Check(check, FAIL, "; ".join(dict.fromkeys(clashes)),
                     "give one of the VMs another MAC address (spec.template.spec.domain.devices.interfaces[].macAddress)",
                     scope)
    return Check(check, PASS, f"no VM on the target uses {', '.join(sorted(mine))}", "", scope)


def _wanted_refs(refs: References) -> List[Tuple[str, str, str]]:
    """(kind as referenced, name, where) of everything the VM references by name."""
    out = [("Secret", n, ", ".join(w)) for n, w in sorted(refs.secrets.items())]
    out += [("ConfigMap", n, ", ".join(w)) for n, w in sorted(refs.configmaps.items())]
    for attribute, matcher in (("instancetype", refs.instancetype), ("preference", refs.preference)):
        if matcher:
            kind, name, revision = matcher
            out.append((kind, name, f"spec.{attribute}"))
            if revision:
                out.append(("ControllerRevision", revision, f"spec.{attribute}.revisionName"))
    return out


def check_referenced(facts: Facts, refs: References, scope: str) -> Check:
    check = "referenced-objects"
    ns = facts.settings.source_namespace
    wanted = _wanted_refs(refs)
    if not wanted:
        return Check(check, PASS, "it references no Secret, ConfigMap, instancetype or preference", "", scope)
    missing, unknown = [], []
    for kind, name, where in wanted:
        canonical = namespaced_kind(kind) or kind
        if kind.lower() in CLUSTER_KINDS:
            obj, error = facts.cluster_objects.get(("source", kind, name), (None, "not looked up"))
            if error:
                unknown.append(f"{kind} {name}: {error}")
            elif obj is None:
                missing.append(f"{kind} {name} ({where})")
        elif facts.source.get(canonical, ns, name) is None:
            missing.append(f"{canonical} {ns}/{name} ({where})")
    if missing:
        return Check(check, FAIL, "not found on the source: " + "; ".join(missing),
                     "create them on the source (the VM cannot restart without them either)", scope)
    if unknown:
        return Check(check, UNKNOWN, "could not verify: " + "; ".join(unknown), "", scope)
    return Check(check, PASS, f"all {len(wanted)} referenced object(s) exist on the source", "", scope)


def content_digest(obj: Obj) -> Tuple[str, Dict[str, str]]:
    """(SHA-256 of what a copy carries, per-key SHA-256) — to compare without showing a value."""
    kind = obj.get("kind")
    if kind == "Secret":
        parts = {**{f"data.{k}": v for k, v in (obj.get("data") or {}).items()}, "type": obj.get("type") or "Opaque"}
    elif kind == "ConfigMap":
        parts = {**{f"data.{k}": v for k, v in (obj.get("data") or {}).items()},
                 **{f"binaryData.{k}": v for k, v in (obj.get("binaryData") or {}).items()}}
    elif kind == "ControllerRevision":
        parts = {"data": obj.get("data"), "revision": obj.get("revision")}
    else:
        parts = {f"spec.{k}": v for k, v in (obj.get("spec") or {}).items()}
    keyed = {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest() for k, v in parts.items()}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest(), keyed


def _differs(a: Obj, b: Obj) -> List[str]:
    """Names of the fields/keys whose content differs (never the values)."""
    digest_a, keys_a = content_digest(a)
    digest_b, keys_b = content_digest(b)
    if digest_a == digest_b:
        return []
    return sorted(k for k in set(keys_a) | set(keys_b) if keys_a.get(k) != keys_b.get(k))


def check_copies(facts: Facts, refs: References, migration_id: str, scope: str) -> Check:
    check = "copied-objects"
    s = facts.settings
    sns, tns = s.source_namespace, s.target_namespace
    wanted = _wanted_refs(refs)
    if not wanted:
        return Check(check, PASS, "nothing to copy", "", scope)
    if facts.namespace_exists is None:
        return Check(check, UNKNOWN, f"could not verify: {facts.namespace_error or 'the target was not read'}", "", scope)
    fails, warns, notes, unknown = [], [], [], []
    for kind, name, _where in wanted:
        if kind.lower() in CLUSTER_KINDS:
            src, _ = facts.cluster_objects.get(("source", kind, name), (None, ""))
            dst, error = facts.cluster_objects.get(("target", kind, name), (None, "not looked up"))
            if error:
                unknown.append(f"{kind} {name} on the target: {error}")
            elif dst is None:
                fails.append(f"cluster-scoped {kind} {name} does not exist on the target (it is not copied)")
            elif src is not None and _differs(src, dst):
                warns.append(f"cluster-scoped {kind} {name} differs on the target ({', '.join(_differs(src, dst))})")
            continue
        canonical = namespaced_kind(kind) or kind
        src = facts.source.get(canonical, sns, name)
        if src is None:
            continue  # referenced-objects reports it
        if canonical in facts.lookup_errors:
            unknown.append(f"{canonical} {tns}/{name}: {facts.lookup_errors[canonical]}")
            continue
        dst = facts.found.get((canonical, tns, name))
        copied = not (canonical == "Secret" and s.secrets != "include")
        if dst is None:
            if copied:
                notes.append(f"{canonical} {name} will be created")
            else:
                fails.append(f"Secret {tns}/{name} is not in the bundle (--secrets {s.secrets}) and does not exist "
                             "on the target")
            continue
        if (meta(dst).get("labels") or {}).get(LABEL_MIGRATION_ID) == migration_id:
            notes.append(f"{canonical} {name} is already copied")
            continue
        if facts.same_cluster and sns == tns:
            continue
        diff = _differs(src, dst)
        if not diff:
            notes.append(f"{canonical} {tns}/{name} already exists with the same content")
        elif copied:
            fails.append(f"{canonical} {tns}/{name} already exists on the target with different content "
                         f"({', '.join(diff)})")
        else:
            warns.append(f"Secret {tns}/{name} on the target differs from the source's ({', '.join(diff)}); "
                         "the VM will use the target's")
    if fails:
        return Check(check, FAIL, "; ".join(fails + warns),
                     "make the target's copy match or delete it (it is not overwritten); for Secrets you may "
                     "instead keep the target's with --secrets reference", scope)
    if unknown:
        return Check(check, UNKNOWN, "could not verify: " + "; ".join(unknown), "", scope)
    if warns:
        return Check(check, WARN, "; ".join(warns), "check that the target's version is the one you want", scope)
    return Check(check, PASS, "; ".join(notes) or "nothing to copy", "", scope)


def check_bundle(vm_plan: Any, scope: str) -> Check:
    if vm_plan is None:
        return Check("bundle", UNKNOWN, "could not verify: the VM was not planned", "", scope)
    if isinstance(vm_plan, DlmError):
        return Check("bundle", FAIL, f"cannot be planned: {vm_plan.message}", vm_plan.hint, scope)
    planned = f"{len(vm_plan.items)} object(s) planned (migration-id {vm_plan.migration_id})"
    # The persistent-state caveat has a row of its own; a missing send phase shows as dlm-enabled.
    warnings = [w for w in vm_plan.warnings if "state PVC" not in w and "was not rendered" not in w]
    if warnings:
        return Check("bundle", WARN, f"{planned}; " + "; ".join(warnings), "see `kubectl dlm render` for the bundle",
                     scope)
    return Check("bundle", PASS, planned, "", scope)
