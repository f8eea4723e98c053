"""Reads what `kubectl dlm report` puts in its archive (diagnostics.py decides, this module reads).

Every read that fails (not found, forbidden, unreachable) becomes a "left out" line with the
reason instead of stopping the report: a support case needs whatever can be had.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from kubectl_dlm import diagnostics, emit, inventory, kube
from kubectl_dlm.errors import DlmError
from kubectl_dlm.model import Obj, meta


def collect(sides: Any, vm: str) -> diagnostics.Contents:
    contents = diagnostics.Contents()
    places = [("source", sides.source, sides.source_namespace), ("target", sides.target, sides.target_namespace)]
    kubevirt_read = set()
    for side, cluster, namespace in places:
        _side(contents, side, cluster, namespace, vm, kubevirt_read)
    contents.left_out.append(diagnostics.NO_EVENT_LOG)
    return contents


def _read(contents: diagnostics.Contents, what: str, side: str, call: Callable[[], Any]) -> Optional[Any]:
    """call()'s answer; None (and a left-out line saying why) when it failed or found nothing."""
    try:
        found = call()
    except DlmError as exc:
        contents.left_out.append(f"{what} on the {side} cluster: {exc.message}")
        return None
    if found is None:
        contents.left_out.append(f"{what} on the {side} cluster: not found")
    return found


def _side(contents, side: str, cluster, namespace: str, vm: str, kubevirt_read: set) -> None:
    names = {("VirtualMachine", vm), ("VirtualMachineInstance", vm)}
    found_vm = None
    for kind in ("VirtualMachine", "VirtualMachineInstance"):
        obj = _read(contents, f"{kind} {namespace}/{vm}", side, lambda: kube.get(cluster, kind, namespace, vm))
        if obj is not None:
            found_vm = obj if kind == "VirtualMachine" else found_vm
            obj, notes = diagnostics.redact_inline(obj, f"{kind} {namespace}/{vm} ({side})")
            contents.add(diagnostics.object_path(side, kind, vm), obj)
            contents.left_out.extend(notes)
    vmims = _read(contents, f"VirtualMachineInstanceMigrations in {namespace}", side,
                  lambda: kube.list_objects(cluster, "VirtualMachineInstanceMigration", namespace)) or []
    for vmim in vmims:
        if (vmim.get("spec") or {}).get("vmiName") == vm:
            contents.add(diagnostics.object_path(side, "VirtualMachineInstanceMigration", meta(vmim)["name"]), vmim)
            names.add(("VirtualMachineInstanceMigration", meta(vmim)["name"]))
    dvs, pvcs, secrets = diagnostics.volume_claims(found_vm)
    for kind, wanted in (("DataVolume", dvs), ("PersistentVolumeClaim", pvcs)):
        for name in sorted(wanted):
            obj = _read(contents, f"{kind} {namespace}/{name}", side, lambda: kube.get(cluster, kind, namespace, name))
            if obj is None:
                continue
            contents.add(diagnostics.object_path(side, kind, name), obj)
            names.add((kind, name))
    contents.left_out.extend(diagnostics.secrets_left_out(side, namespace, secrets))
    if side == "target":  # a tuned attempt's MigrationPolicy (cluster-scoped) that is still there
        policies = _read(contents, f"MigrationPolicies of {namespace}/{vm}", side,
                         lambda: inventory.policies(cluster, namespace, vm)) or []
        for policy in policies:
            contents.add(diagnostics.object_path(side, "MigrationPolicy", meta(policy)["name"]), policy)
    if cluster.server not in kubevirt_read:
        kubevirt_read.add(cluster.server)
        for kv in _read(contents, "the KubeVirt CR", side, lambda: kube.list_objects(cluster, "KubeVirt")) or []:
            contents.add(diagnostics.object_path(side, "KubeVirt", meta(kv)["name"]), kv)
    events: List[Obj] = _read(contents, f"Events in {namespace}", side,
                              lambda: kube.list_objects(cluster, "Event", namespace)) or []
    relevant = diagnostics.relevant_events(events, names)
    if relevant:
        contents.files[f"{side}/events.yaml"] = "".join("---\n" + emit.dump(e) for e in relevant)
    contents.left_out.append(f"Events in {namespace} ({side}) about other objects than the VM, its VMI, "
                             f"migrations and volumes: {len(events) - len(relevant)} left out")
