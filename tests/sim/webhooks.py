"""virt-api's admission webhooks (§3), played after the fact.

The test API server calls only webhooks that are registered, and virt-api's are not, so a request a
real cluster would deny is stored anyway. The simulator sees it on its watch, records the denial it
would have got as a *violation* (the test fails unless it declared it expected) and treats the
object as never admitted: no controller acts on it. Mutations (VMIM label and finalizer, VM firmware UUID/serial) are written right after create.
That extra write is the one visible difference: generation and managedFields of a mutated VM show
a second writer, `virt-api`.
"""
from __future__ import annotations

import copy
import time

from . import kube as K
from .cluster import is_final_vmim, live_migratable_condition
from .constants import (ANN_CREATE_MIGRATION_TARGET, FIN_MIGRATION_JOB, FIN_VMI_FOREGROUND, FINAL_PHASES,
                        LABEL_VMI_NAME, MGR_API, RUN_STRATEGIES)
from .objects import dig, new_uuid

VMIM_MUTATOR = "migrations-mutator.kubevirt.io"
VMIM_CREATE = "migration-create-validator.kubevirt.io"
VMIM_UPDATE = "migration-update-validator.kubevirt.io"
VM_VALIDATOR = "virtualmachine-validator.kubevirt.io"

VMI_WAIT_SECONDS = 0.5  # how long admission waits for the VMI watch to catch up with a VMIM create


class Webhooks:
    def __init__(self, sim, cluster):
        self.sim, self.cluster = sim, cluster
        self._seen: set[str] = set()  # uids already admitted
        self._vmim_spec: dict[str, dict] = {}  # uid -> spec as admitted
        self._vmim_labels: dict[str, str | None] = {}
        self._vm_gen: dict[str, int] = {}

    def deny(self, obj: dict, webhook: str, message: str, reject: bool = True) -> None:
        md = obj["metadata"]
        if reject:
            self.cluster.rejected.add(md["uid"])
        self.sim.record_violation(
            f"{self.cluster.name}: {obj.get('kind')} {md.get('namespace')}/{md['name']}: "
            f"admission webhook \"{webhook}\" denied the request: {message}")

    def on_event(self, kind: str, etype: str, obj: dict, initial: bool) -> bool:
        """Run admission for a newly seen object. Returns False for objects a webhook denied."""
        uid = obj["metadata"]["uid"]
        if etype == "DELETED":
            return uid not in self.cluster.rejected
        if uid in self.cluster.rejected:
            return False
        first = uid not in self._seen
        self._seen.add(uid)
        if first:
            if initial:  # existed before the simulator started: admitted long ago
                self._remember(kind, obj)
                return True
            return getattr(self, f"_create_{kind}")(obj)
        getattr(self, f"_update_{kind}")(obj)
        return True

    def _remember(self, kind: str, obj: dict) -> None:
        uid = obj["metadata"]["uid"]
        if kind == "vmim":
            self._vmim_spec[uid] = copy.deepcopy(obj.get("spec"))
            self._vmim_labels[uid] = dig(obj, "metadata", "labels", LABEL_VMI_NAME)
        elif kind == "vm":
            self._vm_gen[uid] = obj["metadata"].get("generation", 0)

    # ---- VirtualMachine (VMM, VMA) ----

    def _vm_rules(self, vm: dict) -> str | None:
        spec = vm.get("spec") or {}
        running, strategy = spec.get("running"), spec.get("runStrategy")
        if running is not None and strategy is not None:
            return ("Running and RunStrategy are mutually exclusive. Note that Running is deprecated, "
                    "please use RunStrategy instead")
        if running is None and strategy is None:
            return "RunStrategy must be specified"
        if strategy is not None and strategy not in RUN_STRATEGIES:
            return f"Invalid RunStrategy ({strategy})"
        if strategy == "WaitAsReceiver" and not self.cluster.gate_enabled():
            return ("Invalid RunStrategy (WaitAsReceiver), DecentralizedLiveMigration feature gate is not "
                    "enabled in kubevirt resource")
        return None

    def _create_vm(self, vm: dict) -> bool:
        msg = self._vm_rules(vm)
        if msg:
            self.deny(vm, VM_VALIDATOR, msg)
            return False
        self._mutate_vm(vm)
        return True

    def _mutate_vm(self, vm: dict) -> None:
        """VMM:127-140: random firmware uuid/serial when empty, on create only."""
        for _ in range(5):
            fw = dig(vm, "spec", "template", "spec", "domain", "firmware", default={})
            if fw.get("uuid") and fw.get("serial"):
                break
            vm = copy.deepcopy(vm)
            fw = vm["spec"]["template"]["spec"].setdefault("domain", {}).setdefault("firmware", {})
            fw.setdefault("uuid", new_uuid())
            fw.setdefault("serial", new_uuid())
            try:
                vm = self.cluster.write_vm_spec(vm, MGR_API)
                break
            except K.ApiError as e:
                if e.not_found:
                    break
                fresh = self.cluster.kube.get(K.VM, vm["metadata"]["namespace"], vm["metadata"]["name"])
                if fresh is None:
                    break
                vm = fresh
        self._vm_gen[vm["metadata"]["uid"]] = vm["metadata"].get("generation", 0)

    def _update_vm(self, vm: dict) -> None:
        uid, gen = vm["metadata"]["uid"], vm["metadata"].get("generation", 0)
        if gen <= self._vm_gen.get(uid, 0):
            return
        self._vm_gen[uid] = gen
        if gen in self.cluster.sim_generations.get(uid, set()):
            return  # our own write (virt-controller / virt-api)
        msg = self._vm_rules(vm)
        if msg:  # an update cannot be un-stored; record it, keep reconciling the VM as it is
            self.deny(vm, VM_VALIDATOR, msg, reject=False)

    # ---- VirtualMachineInstance (VIM) ----

    def _create_vmi(self, vmi: dict) -> bool:
        """Only VMIs made by someone else than our VM controller pass here (ours are created mutated)."""
        if dig(vmi, "status", "phase"):
            return True
        vmi = copy.deepcopy(vmi)
        vmi.setdefault("status", {})["phase"] = "Pending"  # VIM:131
        fins = vmi["metadata"].setdefault("finalizers", [])
        if FIN_VMI_FOREGROUND not in fins:
            fins.append(FIN_VMI_FOREGROUND)  # VIM:128
        try:
            self.cluster.replace("vmi", vmi, MGR_API)
        except K.ApiError:
            pass
        return True

    def _update_vmi(self, vmi: dict) -> None:
        pass

    # ---- VirtualMachineInstanceMigration (MM, MCA, MUA) ----

    def _create_vmim(self, m: dict) -> bool:
        msg, hook = self._vmim_create_rules(m)
        if msg:
            self.deny(m, hook, msg)
            return False
        for _ in range(5):  # MM:57-85: label := spec.vmiName, append the job finalizer
            m = copy.deepcopy(m)
            m["metadata"].setdefault("labels", {})[LABEL_VMI_NAME] = dig(m, "spec", "vmiName")
            fins = m["metadata"].setdefault("finalizers", [])
            if FIN_MIGRATION_JOB not in fins:
                fins.append(FIN_MIGRATION_JOB)
            try:
                m = self.cluster.replace("vmim", m, MGR_API)
                break
            except K.ApiError as e:
                fresh = None if e.not_found else self.cluster.kube.get(K.VMIM, m["metadata"]["namespace"],
                                                                       m["metadata"]["name"])
                if fresh is None:
                    break
                m = fresh
        self._remember("vmim", m)
        return True

    def _vmim_create_rules(self, m: dict) -> tuple[str | None, str]:
        """MCA checks, in order; the first failure wins (§3)."""
        spec = m.get("spec") or {}
        ns, vmi_name = m["metadata"]["namespace"], spec.get("vmiName") or ""
        send_to, receive = spec.get("sendTo"), spec.get("receive")
        if not vmi_name:
            return "vmiName is missing", VMIM_CREATE
        if spec.get("priority") is not None:
            return ("Migration priority queue, only virt-controller is allowed to set priority field",
                    VMIM_CREATE)
        if not self._vmi_existed(ns, vmi_name, K.rv_int(m)):
            return f'the VMI "{ns}/{vmi_name}" does not exist', VMIM_CREATE
        vmi = self.cluster.get("vmi", ns, vmi_name)
        if dig(vmi, "status", "phase") in FINAL_PHASES:
            return "Cannot migrate VMI in finalized state.", VMIM_CREATE
        cond = live_migratable_condition(vmi) if vmi else None
        decentralized = (send_to is None) != (receive is None)
        if cond and cond.get("status") == "False" and not (
                decentralized and cond.get("reason") == "DisksNotLiveMigratable"):
            return (f"Cannot migrate VMI, Reason: {cond.get('reason', '')}, Message: {cond.get('message', '')}",
                    VMIM_CREATE)
        for other in self.cluster.stores["vmim"].list(ns):
            ouid = other["metadata"]["uid"]
            if ouid == m["metadata"]["uid"] or ouid in self.cluster.rejected:
                continue
            if dig(other, "metadata", "labels", LABEL_VMI_NAME) == vmi_name and not is_final_vmim(other):
                return (f"in-flight migration detected. Active migration job ({ouid}) is currently already "
                        f"in progress for VMI {vmi_name}.", VMIM_CREATE)
        if (send_to is not None or receive is not None) and not self.cluster.gate_enabled():
            return "DecentralizedLiveMigration feature gate is not enabled in kubevirt resource", VMIM_CREATE
        if send_to is not None and receive is not None and \
                send_to.get("migrationID") != receive.get("migrationID"):
            return (f"sendTo migrationID {send_to.get('migrationID')} does not match receive migrationID "
                    f"{receive.get('migrationID')}", VMIM_CREATE)
        return None, VMIM_CREATE

    def _vmi_existed(self, ns: str, name: str, rv: int) -> bool:
        """Did the VMI exist when the VMIM was created? Any phase counts, Pending too (MCA:124-130).
        The VMI and VMIM watches are separate streams, so give the VMI one a moment to catch up."""
        deadline = time.monotonic() + VMI_WAIT_SECONDS
        while True:
            seen = self.cluster.vmi_existed_at(ns, name, rv)
            if seen is not None:
                return seen
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _update_vmim(self, m: dict) -> None:
        uid = m["metadata"]["uid"]
        if uid not in self._vmim_spec:
            self._remember("vmim", m)
            return
        if (m.get("spec") or {}) != (self._vmim_spec[uid] or {}):
            self._vmim_spec[uid] = copy.deepcopy(m.get("spec"))
            self.deny(m, VMIM_UPDATE, "update of Migration object's spec is restricted", reject=False)
        label = dig(m, "metadata", "labels", LABEL_VMI_NAME)
        old = self._vmim_labels.get(uid)
        if old is not None and label != old and not is_final_vmim(m):  # (re-)adding it is fine (MUA:38-64)
            msg = ("selector label can't be removed from an in-flight migration" if label is None else
                   "selector label can't be modified on an in-flight migration")
            self.deny(m, VMIM_UPDATE, msg, reject=False)
        self._vmim_labels[uid] = label


def is_receiver(vmi: dict) -> bool:
    return dig(vmi, "metadata", "annotations", ANN_CREATE_MIGRATION_TARGET) == "true"
