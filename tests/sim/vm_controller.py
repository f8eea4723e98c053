"""virt-controller's VirtualMachine controller (VMC): DataVolumes, the VMI, run strategies, VM status."""
from __future__ import annotations

import copy

from .cdi import DV_READY_PHASES
from .constants import (ANN_CREATE_MIGRATION_TARGET, ANN_RESTORE_RUN_STRATEGY, C_FAILURE, C_READY,
                        FIN_VMI_CONTROLLER, FIN_VMI_FOREGROUND, FINAL_PHASES, MGR_CONTROLLER,
                        MSG_NON_RECEIVER_VMI, RUN_STRATEGIES)
from .objects import controlled_by, dig, get_condition, now, owner_ref
from .runtime import Controller
from .webhooks import VM_VALIDATOR, is_receiver

VM_FINALIZER = FIN_VMI_CONTROLLER  # VMC puts the same finalizer on the VM


def run_strategy(vm: dict) -> str:
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    return "Always" if spec.get("running") else "Halted"


def is_decentralized(vmi: dict | None) -> bool:
    """T:675-681: exactly one of the two syncAddresses is set."""
    ms = dig(vmi, "status", "migrationState", default={})
    return bool(dig(ms, "sourceState", "syncAddress")) != bool(dig(ms, "targetState", "syncAddress"))


def is_migrating(vmi: dict | None) -> bool:
    """MU:76-97: a migration has started and not ended."""
    ms = dig(vmi, "status", "migrationState", default={})
    return bool(ms.get("startTimestamp")) and not ms.get("endTimestamp") and not ms.get("completed")


class VMController(Controller):
    name = "virt-controller/vm"

    def __init__(self, sim, cluster):
        super().__init__(sim, cluster)
        self._restart: set[str] = set()  # VM uids whose failed VMI was deleted to be started again

    def reconcile(self, key):
        ns, name = key
        c = self.cluster
        vm = c.get("vm", ns, name)
        if vm is None or not c.admitted(vm):
            return None
        vmi = c.get("vmi", ns, name)
        if vmi is not None and controlled_by(vmi, "VirtualMachine") != name:
            vmi = None  # someone else's VMI of that name; not ours to manage
        if vm["metadata"].get("deletionTimestamp"):
            return self._delete_vm(vm, vmi)
        if VM_FINALIZER not in (vm["metadata"].get("finalizers") or []):
            vm["metadata"].setdefault("finalizers", []).append(VM_FINALIZER)
            c.replace("vm", vm, MGR_CONTROLLER)
            return None
        if vmi is not None and vmi["metadata"].get("deletionTimestamp"):
            self._release_vmi(vmi)
        dvs_ready, provisioning = self._ensure_data_volumes(vm)
        failure, requeue = None, None
        strategy = run_strategy(vm)
        if vmi is not None and vmi["metadata"].get("deletionTimestamp"):
            pass  # wait for it to go
        elif strategy == "Halted":
            if vmi is not None:
                c.delete("vmi", ns, name, vmi["metadata"]["uid"])
        elif vmi is None:
            if self._should_start(vm, strategy) and dvs_ready:
                vmi = self._create_vmi(vm, receiver=strategy == "WaitAsReceiver")
                self._restart.discard(vm["metadata"]["uid"])
        elif dig(vmi, "status", "phase") in FINAL_PHASES:
            requeue = self._final_vmi(vm, vmi, strategy)
            if requeue == "stop":
                return None
        elif strategy == "WaitAsReceiver":
            failure = self._receiver(vm, vmi)
            if failure == "restored":
                return None
        self._update_status(vm, vmi, strategy, provisioning, failure)
        return requeue if isinstance(requeue, float) else None

    # ---- run strategies ----

    def _should_start(self, vm: dict, strategy: str) -> bool:
        if strategy in ("Always", "WaitAsReceiver"):
            return True
        if strategy in ("RerunOnFailure", "Once"):
            # started once under this strategy already: VMC:1218-1220 does not start it again
            return dig(vm, "status", "runStrategy") != strategy or vm["metadata"]["uid"] in self._restart
        return False  # Manual: only on an explicit start request

    def _final_vmi(self, vm: dict, vmi: dict, strategy: str):
        c, ns, name = self.cluster, vm["metadata"]["namespace"], vm["metadata"]["name"]
        completed = bool(dig(vmi, "status", "migrationState", "completed"))
        if is_decentralized(vmi):
            if not completed:
                return 2.0  # VMC:997-1002: wait for the migration outcome to arrive
            if strategy == "Always":  # VMC:987-996: stop the VM for good, then delete the VMI
                vm = copy.deepcopy(vm)
                vm["spec"].pop("running", None)
                vm["spec"]["runStrategy"] = "Halted"
                c.write_vm_spec(vm, MGR_CONTROLLER)
                return "stop"
            if strategy == "RerunOnFailure":  # deleted, not restarted (VMC:1047-1066)
                c.delete("vmi", ns, name, vmi["metadata"]["uid"])
            return None  # Manual / Once keep the Succeeded VMI
        phase = dig(vmi, "status", "phase")
        if strategy == "Always" or (strategy == "RerunOnFailure" and phase == "Failed"):
            c.delete("vmi", ns, name, vmi["metadata"]["uid"])  # restart: a new VMI follows
            self._restart.add(vm["metadata"]["uid"])
        elif strategy == "RerunOnFailure":
            c.delete("vmi", ns, name, vmi["metadata"]["uid"])
        return None

    def _receiver(self, vm: dict, vmi: dict):
        """VMC:1149-1173 for a VM that waits as receiver and already has a VMI."""
        if is_receiver(vmi):
            return None
        if not dig(vmi, "status", "migrationState", "completed"):
            return {"reason": "FailedCreate", "message": MSG_NON_RECEIVER_VMI}
        restore = dig(vm, "metadata", "annotations", ANN_RESTORE_RUN_STRATEGY)
        if not restore:
            return None  # stays WaitAsReceiver, shows Running (§4)
        if restore not in RUN_STRATEGIES:  # the VM validator rejects virt-controller's own Update
            denial = f'admission webhook "{VM_VALIDATOR}" denied the request: Invalid RunStrategy ({restore})'
            return {"reason": "FailedUpdateError", "message": denial}
        vm = copy.deepcopy(vm)
        vm["spec"].pop("running", None)
        vm["spec"]["runStrategy"] = restore  # used verbatim, annotation kept (VMC:3387-3392)
        self.cluster.write_vm_spec(vm, MGR_CONTROLLER)
        return "restored"

    # ---- children ----

    def _ensure_data_volumes(self, vm: dict) -> tuple[bool, bool]:
        """Create missing dataVolumeTemplates DVs; ready when each is Succeeded/WFFC/PendingPopulation."""
        c, ns = self.cluster, vm["metadata"]["namespace"]
        ready, provisioning = True, False
        for tpl in dig(vm, "spec", "dataVolumeTemplates", default=[]):
            name = tpl["metadata"]["name"]
            dv = c.get("dv", ns, name)
            if dv is None:
                md = {"name": name, "namespace": ns, "ownerReferences": [owner_ref(vm)]}
                for k in ("labels", "annotations"):
                    if tpl["metadata"].get(k):
                        md[k] = dict(tpl["metadata"][k])
                c.create("dv", {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": md,
                                "spec": copy.deepcopy(tpl.get("spec") or {})}, MGR_CONTROLLER)
                ready, provisioning = False, True
            elif dig(dv, "status", "phase") not in DV_READY_PHASES:
                ready, provisioning = False, True
        return ready, provisioning

    def _create_vmi(self, vm: dict, receiver: bool) -> dict:
        tpl = copy.deepcopy(dig(vm, "spec", "template", default={}))
        md = tpl.get("metadata") or {}
        md.pop("creationTimestamp", None)
        md.update({"name": vm["metadata"]["name"], "namespace": vm["metadata"]["namespace"],
                   "ownerReferences": [owner_ref(vm)],
                   # VMC's finalizer, then the VMI mutator's (VIM:128)
                   "finalizers": [FIN_VMI_CONTROLLER, FIN_VMI_FOREGROUND]})
        md.setdefault("labels", {})["vm.kubevirt.io/name"] = vm["metadata"]["name"]
        md.setdefault("annotations", {})["kubevirt.io/vm-generation"] = str(vm["metadata"].get("generation", 1))
        if receiver:
            md["annotations"][ANN_CREATE_MIGRATION_TARGET] = "true"  # VMC:1301-1308
        vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": md,
               "spec": tpl.get("spec") or {}, "status": {"phase": "Pending"}}  # VIM:131
        out = self.cluster.create("vmi", vmi, MGR_CONTROLLER)
        self.cluster.note_vmi_created(out)
        return out

    def _release_vmi(self, vmi: dict) -> None:
        """Drop our finalizer from a VMI that is going away once it is final."""
        fins = vmi["metadata"].get("finalizers") or []
        if FIN_VMI_CONTROLLER in fins and dig(vmi, "status", "phase") in FINAL_PHASES:
            vmi["metadata"]["finalizers"] = [f for f in fins if f != FIN_VMI_CONTROLLER]
            self.cluster.replace("vmi", vmi, MGR_CONTROLLER)

    def _delete_vm(self, vm: dict, vmi: dict | None):
        if vmi is not None:
            if not vmi["metadata"].get("deletionTimestamp"):
                self.cluster.delete("vmi", vmi["metadata"]["namespace"], vmi["metadata"]["name"],
                                    vmi["metadata"]["uid"])
            else:
                self._release_vmi(vmi)
            return None
        fins = vm["metadata"].get("finalizers") or []
        if VM_FINALIZER in fins:
            vm["metadata"]["finalizers"] = [f for f in fins if f != VM_FINALIZER]
            self.cluster.replace("vm", vm, MGR_CONTROLLER)
        return None

    # ---- status ----

    def _printable(self, vm: dict, vmi: dict | None, strategy: str, provisioning: bool) -> str:
        """First match wins (VMC:2534-2659): Stopped/Starting come before WaitingForReceiver."""
        phase = dig(vmi, "status", "phase")
        if vm["metadata"].get("deletionTimestamp"):
            return "Terminating"
        if vmi is not None and vmi["metadata"].get("deletionTimestamp") and phase not in FINAL_PHASES:
            return "Stopping"
        if vmi is not None and is_migrating(vmi):
            return "Migrating"
        if phase == "Running":
            return "Running"
        if provisioning:
            return "Provisioning"
        if vmi is None:
            return "Starting" if strategy != "Halted" and self._should_start(vm, strategy) else "Stopped"
        if phase in ("Pending", "Scheduling", "Scheduled", None):
            return "Starting"
        if phase in FINAL_PHASES:
            return "Stopped"
        if phase == "WaitingForSync":
            return "WaitingForReceiver"
        return "Unknown"

    def _update_status(self, vm: dict, vmi: dict | None, strategy: str, provisioning: bool,
                       failure: dict | None) -> None:
        old = copy.deepcopy(vm.get("status") or {})
        st = copy.deepcopy(old)
        st["created"] = vmi is not None
        ready = vmi is not None and dig(vmi, "status", "phase") not in FINAL_PHASES and \
            (get_condition(vmi.get("status"), C_READY) or {}).get("status") == "True"
        st["ready"] = ready
        if vmi is not None or strategy not in ("RerunOnFailure", "Once"):
            st["runStrategy"] = strategy  # for these two: recorded once a VMI ran under it (VMC:1218-1220)
        st["printableStatus"] = self._printable(vm, vmi, strategy, provisioning)
        gen = vm["metadata"].get("generation")
        if gen:
            st["observedGeneration"] = st["desiredGeneration"] = gen
        # VMC:2699-2795: the VMI's conditions are the VM's (all of them); Failure is the VM's own
        prev = {c["type"]: c for c in old.get("conditions") or []}
        conds = []
        if vmi is None:
            conds.append(prev.get(C_READY) if (prev.get(C_READY) or {}).get("reason") == "VMINotExists" else
                         {"type": C_READY, "status": "False", "reason": "VMINotExists",
                          "message": "VMI does not exist", "lastProbeTime": None, "lastTransitionTime": now()})
        else:
            for c in dig(vmi, "status", "conditions", default=[]):
                p = prev.get(c["type"])
                keep = p and p.get("status") == c.get("status") and p.get("reason", "") == c.get("reason", "")
                conds.append(p if keep else copy.deepcopy(c))
        if failure:
            p = prev.get(C_FAILURE)
            keep = p and p.get("reason") == failure["reason"]
            conds.append(p if keep else {"type": C_FAILURE, "status": "True", "reason": failure["reason"],
                                         "message": failure["message"], "lastProbeTime": None,
                                         "lastTransitionTime": now()})
        st["conditions"] = conds
        if st == old:
            return
        vm["status"] = st
        self.cluster.replace_status("vm", vm, MGR_CONTROLLER)
