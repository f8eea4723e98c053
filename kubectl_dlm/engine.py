"""Carry out rendered bundles on the two clusters, in order, and follow them to the end.

Per VM the steps are: prepare (server-side apply on the target, the receiving VM last, once every
blank DataVolume is ready: disks.py) -> wait until the receiving VMI is WaitingForSync -> receive (target VMIM) -> send (source VMIM, with the connect URL from the
target) -> follow until both sides are final. Every step is idempotent: a re-run finds its own
objects by their labels and carries on where the migration is; it never creates a second VMIM.
Everything the engine learns comes from watches (watcher.py), none from polling loops.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from kubectl_dlm import diagnosis, disks, follow, ids, inventory, kube, tuning
from kubectl_dlm.errors import Conflict, DlmError
from kubectl_dlm.model import (
    COPIED_KINDS, LABEL_MIGRATION_ID, LABEL_VM, MANAGED_BY, MANAGER, Obj, Settings, meta, display_name,
)
from kubectl_dlm.plan import label_value
from kubectl_dlm.watcher import Event, Watcher, drain, stop_all

REFUSED = "refused"
DRY_RUN = "dry run"
LIVE_ADDRESS_WAIT = 30.0  # seconds to wait for the target VMIM's own address before using the bundle's
REASON_GRACE = 5.0  # seconds to wait for KubeVirt's reason after a side turned Failed
SOURCE_GONE_GRACE = 15.0  # seconds a target may take to report success after the source migration went away
END_WAIT = 20.0  # seconds to wait for KubeVirt to let go of a migration we deleted to end it
# Seconds KubeVirt gets to fail the other side by itself before we delete it. After the hand-off it
# does (migration.go:630); deleting the target VMIM sooner makes the source's synchronization
# controller delete the source VMIM too (CancelMigration, synchronization-controller.go:1458-1473),
# Failed or not, and the user loses KubeVirt's record of the failure.
PEER_GRACE = 5.0


def owned_by(vmim: Obj, run: "Run") -> bool:
    """One of this run's VMIMs: our label, this migration ID AND this VM (by label and by VMI name)."""
    labels = meta(vmim).get("labels") or {}
    return (labels.get(MANAGED_BY) == MANAGER and labels.get(LABEL_MIGRATION_ID) == run.migration_id
            and labels.get(LABEL_VM) == label_value(run.vm) and (vmim.get("spec") or {}).get("vmiName") == run.vm)


@dataclass
class Run:
    """One VM's migration as the engine carries it out."""

    vm: str
    migration_id: str
    docs: Dict[str, List[Obj]]  # phase -> objects in apply order
    connect_url: Optional[str]  # the URL rendered into the bundle (None: not known at render time)
    make_send: Optional[Callable[[str], Obj]] = None  # builds the source VMIM once the URL is known
    url_pinned: bool = False  # the user chose connect_url (--connect-url): it wins over the live address
    step: str = "prepare"  # prepare -> wait-disks -> wait-receiver -> receive -> send -> follow -> done
    view: follow.View = field(default_factory=follow.View)
    outcome: Optional[str] = None
    message: str = ""
    hint: str = ""
    started: float = 0.0
    sent_at: Optional[float] = None
    phase_since: Dict[str, float] = field(default_factory=dict)
    failed_at: Optional[float] = None
    source_gone_at: Optional[float] = None
    ending: List[tuple] = field(default_factory=list)  # (side, ns/name) of the VMIMs we deleted to end them
    ending_since: float = 0.0
    outcome_pending: tuple = ()
    last_phases: tuple = ("", "")
    disks: Dict[str, Optional[Obj]] = field(default_factory=dict)  # blank DataVolumes, as last seen
    disks_since: float = 0.0
    disks_noticed: bool = False
    received_at: Optional[float] = None
    configuration_shown: bool = False  # KubeVirt's resolved migrationConfiguration was reported
    held_for_slot: bool = False  # prepared ahead, said once that it waits for a transfer slot


class Engine:
    def __init__(self, source: kube.Cluster, target: kube.Cluster, settings: Settings, reporter,
                 timeout: Optional[float] = None, sync_timeout: Optional[float] = None, parallel: int = 1,
                 dry_run: bool = False, metrics=None):
        self.source, self.target, self.settings = source, target, settings
        self.reporter, self.metrics = reporter, metrics
        self.timeout, self.sync_timeout = timeout, sync_timeout
        self.parallel, self.dry_run = max(1, parallel), dry_run
        # VMs prepared ahead (blank disks, receiving VM waiting in WaitingForSync) while `parallel`
        # transfers run: a receiving VMI gets no pod until its VMIM exists (vmi/lifecycle.go:326-327,
        # the migration controller creates the target pod), so it holds no node resources, and the
        # next VM starts its migration as soon as a transfer slot frees.
        self.ahead = self.parallel
        self._active: List[Run] = []
        self.events: "queue.Queue[Event]" = queue.Queue()
        self.watchers: List[Watcher] = []

    # --- applying ---------------------------------------------------------------------------

    def apply_owned(self, cluster: kube.Cluster, obj: Obj, run: Run) -> Obj:
        """Apply one object unless the name is taken by something this migration did not create."""
        kind, m = obj["kind"], meta(obj)
        existing = kube.get(cluster, kind, m.get("namespace"), m["name"])
        if existing is not None:
            labels = meta(existing).get("labels") or {}
            ours = labels.get(MANAGED_BY) == MANAGER and (kind in COPIED_KINDS or labels.get(LABEL_MIGRATION_ID) == run.migration_id)
            if not ours:
                raise Conflict(
                    f"{kind} {display_name(m.get('namespace'), m['name'])} already exists on {cluster.describe()} and was not "
                    f"created by this migration ({run.migration_id}); nothing was overwritten",
                    "rename or remove it, or run `kubectl dlm cleanup` if an earlier attempt left it behind")
            if kind == "VirtualMachineInstanceMigration":
                return existing  # spec is immutable and already what we want
        if kind == "DataVolume":
            pvc = kube.get(cluster, "PersistentVolumeClaim", m.get("namespace"), m["name"])
            if pvc is not None and existing is None:
                raise Conflict(f"PersistentVolumeClaim {display_name(m.get('namespace'), m['name'])} already exists on "
                               f"{cluster.describe()}; the blank DataVolume {m['name']} would adopt it",
                               "remove or rename that claim, or map the claim name with --claim-map")
        return kube.apply(cluster, obj, dry_run=self.dry_run)

    def _guard_id(self, run: Run) -> None:
        """Just before a VMIM is created: no other VMI's migration took this ID meanwhile (another
        `migrate` started at the same time; the pre-flight check cannot see the future)."""
        seen = {"source": inventory.every_vmim(self.source, [self.settings.source_namespace])}
        seen["target"] = seen["source"] if self.target.server == self.source.server else \
            inventory.every_vmim(self.target, [self.settings.target_namespace])
        ours = {(c, role, ns, run.vm) for c in ("source", "target")
                for role, ns in (("send", self.settings.source_namespace), ("receive", self.settings.target_namespace))
                if c == {"send": "source", "receive": "target"}[role] or self.target.server == self.source.server}
        foreign = ids.foreign_uses(seen, run.migration_id, ours)
        if foreign:
            raise Conflict(f"migration ID {run.migration_id} was taken meanwhile by {foreign[0].describe()}; KubeVirt "
                           "pairs the two sides by this ID alone, so no migration object of ours was created",
                           f"`kubectl dlm cleanup {run.vm}` removes what was prepared; migrate again without "
                           "--migration-id (a unique ID is derived)")

    def _apply_phase(self, run: Run, phase: str, only: Optional[Callable[[Obj], bool]] = None) -> None:
        cluster = self.source if phase == "send" else self.target
        if phase in ("receive", "send") and run.docs.get(phase) and not self.dry_run:
            self._guard_id(run)
        for obj in run.docs.get(phase, []):
            if only is not None and not only(obj):
                continue
            self.apply_owned(cluster, obj, run)
            self.reporter.event(run.vm, f"{'checked' if self.dry_run else 'applied'} {obj['kind']} "
                                        f"{display_name(meta(obj).get('namespace'), meta(obj)['name'])} on {cluster.context}")

    # --- watching ---------------------------------------------------------------------------

    def _start_watchers(self) -> None:
        selector = f"{MANAGED_BY}={MANAGER}"
        ns_src, ns_tgt = self.settings.source_namespace, self.settings.target_namespace
        specs = [(self.target, "VirtualMachineInstance", ns_tgt, "target/vmi", ""),
                 (self.target, "VirtualMachine", ns_tgt, "target/vm", selector),
                 (self.target, "DataVolume", ns_tgt, "target/dv", selector),
                 (self.target, "VirtualMachineInstanceMigration", ns_tgt, "target/vmim", selector),
                 (self.source, "VirtualMachineInstanceMigration", ns_src, "source/vmim", selector)]
        for cluster, kind, ns, tag, sel in specs:
            watcher = Watcher(cluster, kind, ns, self.events, tag, sel)
            watcher.start()
            self.watchers.append(watcher)

    def stop(self) -> None:
        """Stop and join every watcher (closing its connection) before anyone may exit the process."""
        stop_all(self.watchers)
        self.watchers = []

    def _observe(self, runs: List[Run], event: Event) -> None:
        if event.type in ("LOST", "BACK"):
            self.reporter.notice(event.message)
            return
        for run in runs:
            if event.tag == "target/dv":
                self._observe_disks(run, event)
            elif event.tag in ("target/vmi", "target/vm"):
                self._observe_named(run, event, "target_vmi" if event.tag == "target/vmi" else "target_vm")
            else:
                self._observe_vmim(run, event, "source" if event.tag.startswith("source") else "target")

    def _observe_named(self, run: Run, event: Event, attr: str) -> None:
        """The target VMI / VM carry the VM's own name."""
        mine = [o for o in event.objects if meta(o).get("name") == run.vm]
        if event.type == "LIST":
            setattr(run.view, attr, mine[0] if mine else None)
        elif mine:
            setattr(run.view, attr, None if event.type == "DELETED" else mine[0])

    def _observe_disks(self, run: Run, event: Event) -> None:
        mine = {meta(o).get("name"): o for o in event.objects
                if (meta(o).get("labels") or {}).get(LABEL_MIGRATION_ID) == run.migration_id}
        if event.type == "LIST":
            run.disks = {name: mine.get(name) for name in _disk_names(run)}
        for name, obj in mine.items():
            if name in _disk_names(run):
                run.disks[name] = None if event.type == "DELETED" else obj

    def _observe_vmim(self, run: Run, event: Event, side: str) -> None:
        mine = [o for o in event.objects if owned_by(o, run)]
        attr = f"{side}_vmim"
        current = getattr(run.view, attr)
        if event.type == "LIST" or (mine and event.type == "DELETED"):
            found = None if event.type == "DELETED" else (mine[0] if mine else None)
            if found is None and current is not None:
                setattr(run.view, f"{attr}_final", follow.phase(current))
            setattr(run.view, attr, found)
        elif mine:
            setattr(run.view, attr, mine[0])
        if getattr(run.view, attr) is not None:
            setattr(run.view, f"{attr}_seen", True)

    # --- the loop ---------------------------------------------------------------------------

    def _advance(self, run: Run, now: float) -> None:
        if run.step == "prepare":
            self._apply_phase(run, "prepare", only=lambda o: o["kind"] != "VirtualMachine")
            run.step, run.disks_since = "wait-disks", now
        if run.step == "wait-disks":
            verdict = disks.assess(_disk_names(run), run.disks)
            if verdict.failed:
                self._finish(run, follow.FAILED, f"{verdict.failed}; the receiving VM was not created",
                             "see `kubectl describe dv` on the target; the source VM keeps running; "
                             f"`kubectl dlm cleanup {run.vm}` removes the blank disks")
                return
            if not verdict.ready:
                if not run.disks_noticed and now - run.disks_since > disks.STALL_NOTICE:
                    run.disks_noticed = True
                    self.reporter.notice(f"{run.vm}: still waiting for target disk(s) after "
                                         f"{int(now - run.disks_since)}s: {'; '.join(verdict.waiting)}")
                return
            self._apply_phase(run, "prepare", only=lambda o: o["kind"] == "VirtualMachine")
            run.step = "wait-receiver"
        if run.step == "wait-receiver":
            vmi_phase = follow.phase(run.view.target_vmi)
            if vmi_phase == "WaitingForSync" or run.view.target_vmim is not None:
                run.step = "receive"
            elif vmi_phase in ("Failed", "Succeeded"):
                self._finish(run, follow.FAILED, f"the receiving VMI is {vmi_phase}",
                             "see `kubectl describe vmi` on the target, then `kubectl dlm cleanup`")
                return
        if run.step == "receive":
            if run.view.target_vmim is None and self._transfers(besides=run) >= self.parallel:
                if not run.held_for_slot:
                    run.held_for_slot = True
                    self.reporter.event(run.vm, f"prepared ahead (disks and receiving VM ready); its migration starts "
                                                f"when one of the {self.parallel} running at a time ends")
                return
            self._apply_phase(run, "receive")
            run.step, run.received_at = "send", now
        if run.step == "send":
            url = self._send_url(run, now)
            if url:
                if run.make_send and (not run.docs.get("send") or _rendered_url(run) != url):
                    run.docs["send"] = [run.make_send(url)]
                self._apply_phase(run, "send")
                run.sent_at = now
                run.step = "follow"
        if run.step == "follow":
            self._judge(run, now)
        elif run.step == "ending":
            self._ending(run, now)

    def _transfers(self, besides: Run) -> int:
        """Runs whose migrations exist (receive phase applied), not counting `besides`."""
        return sum(1 for r in self._active if r is not besides and r.step in ("send", "follow", "ending"))

    def _send_url(self, run: Run, now: float) -> Optional[str]:
        """The connectURL for the source VMIM, decided when it is sent: the user's --connect-url, else
        the target VMIM's live status.synchronizationAddresses, which the migration controller refreshes
        every reconcile (pkg/virt-controller/watch/migration/migration.go:658,698-714 @v1.9.0) while
        the address in the bundle names the sync controller's leader pod at render time, which may have
        moved since. The source writes connectURL into its first dial and the VMIM spec is immutable,
        so a stale one would stall in Synchronizing with no KubeVirt timeout."""
        if run.url_pinned and run.connect_url:
            return run.connect_url
        live = self._sync_address(run)
        rendered = _rendered_url(run) or run.connect_url
        if live:
            if rendered and rendered != live:
                self.reporter.notice(f"{run.vm}: the target migration publishes synchronization address {live}, the "
                                     f"bundle has {rendered} (rendered earlier; the leader may have moved): using {live}")
            return live
        if rendered and now - (run.received_at or now) >= LIVE_ADDRESS_WAIT:
            self.reporter.notice(f"{run.vm}: the target migration shows no synchronization address after "
                                 f"{int(LIVE_ADDRESS_WAIT)}s: using {rendered} from the bundle")
            return rendered
        return None

    def _sync_address(self, run: Run) -> Optional[str]:
        addresses = ((run.view.target_vmim or {}).get("status") or {}).get("synchronizationAddresses") or []
        return addresses[0] if addresses else None

    def _judge(self, run: Run, now: float) -> None:
        result = follow.assess(run.view)
        phases = (result.source_phase, result.target_phase)
        if phases != run.last_phases:
            run.last_phases = phases
            run.phase_since = {"at": now}
        self.reporter.update(run, result, now - run.phase_since.get("at", now), self._progress(run, result))
        self._show_configuration(run)
        source_gone = run.view.source_vmim_seen and run.view.source_vmim is None
        if result.outcome is None and (source_gone or follow.phase(run.view.target_vmim) == "Succeeded"):
            # No outcome although the source migration went away, or the target finished: KubeVirt's
            # clean-up after success seen out of order, or the source VM was deleted (a deleting VMI's
            # migration is left as it is: MC:1769-1771). Give both a moment, then decide from both sides.
            run.source_gone_at = run.source_gone_at or now
            if now - run.source_gone_at > SOURCE_GONE_GRACE:
                self._source_gone(run, result, now)
            return
        run.source_gone_at = None
        if result.outcome == follow.FAILED:
            self._failed(run, result, now)
            return
        if result.outcome == follow.CANCELLED:
            self._end(run, result.outcome, result.message, result.hint, now)
            return
        if result.outcome:
            self._finish(run, result.outcome, result.message, result.hint)
            return
        if self.sync_timeout and run.sent_at and follow.sync_stalled(run.view) and now - run.sent_at > self.sync_timeout:
            found = diagnosis.diagnose(self._evidence(run))
            self._finish(run, follow.TIMED_OUT,
                         f"the two sides did not connect within {int(self.sync_timeout)}s: {found.why}"
                         + (f" - likely cause: {found.cause}" if found.cause else ""),
                         (found.fix + "; " if found.fix else "") + f"the migration was left as it is: keep waiting with "
                         f"`kubectl dlm status {run.vm} --watch`, or stop it with `kubectl dlm cancel {run.vm}`")

    def _show_configuration(self, run: Run) -> None:
        """Once the target's migration controller handed off: the configuration it resolved (the
        cluster's, with our MigrationPolicy's fields when it chose ours: tuning.py)."""
        if run.configuration_shown or run.view.target_vmim is None:
            return
        policy, config = tuning.resolved(run.view.target_vmi, run.view.target_vmim,
                                         migration_uid=meta(run.view.target_vmim).get("uid"))
        if config is not None:
            run.configuration_shown = True
            self.reporter.configuration(run.vm, policy, config)

    def _evidence(self, run: Run) -> diagnosis.Evidence:
        """Read now what explains a stall: both VMIs (their failure condition, the source's migrationState)
        and the Events about our objects on each side. The VMIMs are the watches' current copies."""
        import datetime as dt

        evidence = diagnosis.Evidence(read_at=dt.datetime.now(dt.timezone.utc), source_vmim=run.view.source_vmim,
                                      target_vmim=run.view.target_vmim, target_vmi=run.view.target_vmi)
        names = {run.vm} | {meta(o).get("name") for o in (run.view.source_vmim, run.view.target_vmim) if o}
        for side, cluster, ns in (("source", self.source, self.settings.source_namespace),
                                  ("target", self.target, self.settings.target_namespace)):
            try:
                if side == "source":
                    evidence.source_vmi = kube.get(cluster, "VirtualMachineInstance", ns, run.vm)
                for event in kube.list_objects(cluster, "Event", ns):
                    if (event.get("involvedObject") or {}).get("name") in names:
                        evidence.events.append((side, event))
            except DlmError:
                continue  # e.g. no permission to list Events: diagnose from the rest
        return evidence

    def _dry_run(self, run: Run) -> List[str]:
        """Send every object with dryRun=All that an API server can judge now; return what only the real
        run can have validated. KubeVirt admits a target VMIM only once the receiving VMI exists
        (pkg/virt-api/webhooks/validating-webhook/admitters/migration-create-admitter.go:124-128
        @v1.9.0); that webhook has sideEffects None, so it runs on a dry run too, and a dry-run-created
        receiving VM starts no VMI: the receive phase is checked only when that VMI already exists."""
        later = []
        self._apply_phase(run, "prepare")
        if kube.get(self.target, "VirtualMachineInstance", self.settings.target_namespace, run.vm) is not None:
            self._apply_phase(run, "receive")
        else:
            for obj in run.docs.get("receive", []):
                later.append(f"{obj['kind']} {display_name(meta(obj).get('namespace'), meta(obj)['name'])} (needs the receiving VMI)")
                self.reporter.event(run.vm, f"validated at run time: needs the receiving VMI: {obj['kind']} "
                                            f"{display_name(meta(obj).get('namespace'), meta(obj)['name'])} on {self.target.context}")
        url = run.connect_url
        if url and run.make_send and _rendered_url(run) != url:
            run.docs["send"] = [run.make_send(url)]
        if run.docs.get("send"):
            self._apply_phase(run, "send")
        else:
            later.append("the source VirtualMachineInstanceMigration (needs the target's synchronization address)")
            self.reporter.event(run.vm, "validated at run time: needs the target's synchronization address: the source "
                                        f"VirtualMachineInstanceMigration on {self.source.context}")
        return later

    def _failed(self, run: Run, result: follow.Assessment, now: float) -> None:
        """A side failed. KubeVirt may write its reason moments after the phase (and, before the
        hand-off, only in an Event or on the VMI): look everywhere, wait briefly for it, then end
        the other side, which KubeVirt leaves open when the target fails before the hand-off."""
        run.failed_at = run.failed_at or now
        self._gather_evidence(run)
        result = follow.assess(run.view)
        if result.outcome != follow.FAILED:
            return
        if not result.reason and now - run.failed_at < REASON_GRACE:
            return  # the watches and the next look may bring it
        if self._open_sides(run) and now - run.failed_at < PEER_GRACE:
            return  # KubeVirt may still fail the other side itself
        source_vm = kube.get(self.source, "VirtualMachine", self.settings.source_namespace, run.vm)
        if follow.source_deleted(source_vm, run.view.source_vmi):
            # Someone deleted the source VM mid-transfer: its launcher pod goes (vmi/lifecycle.go:70-75),
            # the target's incoming QEMU loses its stream and exits, and virt-controller fails the target
            # migration ("target pod shutdown during migration", MC:588-597) or the source one ("vmi does
            # not exist", MC:561-566). Say what each side shows, not "the source VM keeps running".
            said = follow.each_side(run.view, source_vm, run.view.source_vmi)
            self._end(run, follow.FAILED, f"the source VM was deleted during the migration ({said}); {result.message}",
                      f"run `kubectl dlm cleanup {run.vm}` (it removes what this attempt left on both sides); the "
                      "guest stopped with its source VM and did not reach the target", now)
            return
        if follow.launcher_ended(run.view.source_vmi):
            # The source launcher died mid-transfer: nothing on the source reports it (virt-handler skips
            # a migrating VMI, vm.go:409-422), the target fails on its lost stream (MC:588-597), and the
            # source VMI still shows Running. Do not tell the user the source VM keeps running.
            self._end(run, follow.FAILED, f"{result.message}; the source VMI's launcher pod has ended (its Ready "
                      "condition says PodTerminating): its guest is no longer running, although the VMI still "
                      f"shows {follow.phase(run.view.source_vmi) or 'no phase'}",
                      f"run `kubectl dlm cleanup {run.vm}` (it removes what this attempt left on both sides), then "
                      f"start the VM again on the source (`virtctl restart {run.vm}`) and migrate again", now)
            return
        self._end(run, follow.FAILED, result.message,
                  f"run `kubectl dlm cleanup {run.vm}` (it removes what this attempt left on both sides), then migrate "
                  "again; " + (follow.explain(result.message)[1] or "the source VM keeps running"), now)

    def _end(self, run: Run, outcome: str, message: str, hint: str, now: float) -> None:
        """Delete the sides still open, then (step "ending") wait, on the watches, until they are gone."""
        run.ending = self._end_open_sides(run)
        run.outcome_pending = (outcome, message, hint)
        run.ending_since = now
        run.step = "ending"
        self._ending(run, now)

    def _ending(self, run: Run, now: float) -> None:
        outcome, message, hint = run.outcome_pending
        held = [(side, name) for side, name in run.ending
                if getattr(run.view, f"{side}_vmim") is not None
                and follow.phase(getattr(run.view, f"{side}_vmim")) not in inventory.FINAL]
        if held and now - run.ending_since < END_WAIT:
            return
        gone = [f"{side} migration {name}" for side, name in run.ending if (side, name) not in held]
        if gone:
            message += f"; ended the {' and the '.join(gone)} so that it does not hang"
        if held:
            side, name = held[0]
            message += (f"; asked KubeVirt to end the {side} migration {name} (deleted it, as `kubectl dlm cancel` "
                        f"does), but after {int(END_WAIT)}s KubeVirt still holds it: a source that never reached "
                        "the target waits for a target pod that will not come (virt-controller, MC:789-799, "
                        "MC:1868-1870), and no new migration of this VM is admitted until it is gone")
            hint = (f"check virt-controller on the {side} cluster; if the migration stays, remove its finalizers "
                    f"(kubectl patch vmim {name.split('/')[-1]} -n {name.split('/')[0]} --type=merge "
                    "-p '{\"metadata\":{\"finalizers\":null}}'), then " + hint)
        self._finish(run, outcome, message, hint)

    def _source_gone(self, run: Run, result: follow.Assessment, now: float) -> None:
        """The source migration went away and the target did not finish: say what each side shows."""
        source_vm = kube.get(self.source, "VirtualMachine", self.settings.source_namespace, run.vm)
        source_vmi = kube.get(self.source, "VirtualMachineInstance", self.settings.source_namespace, run.vm)
        vmi_deleting = source_vmi is None or bool(meta(source_vmi).get("deletionTimestamp"))
        if run.view.source_vmim is not None and not vmi_deleting:
            return  # the source is alive and its migration open: the normal path decides
        said = follow.each_side(run.view, source_vm, source_vmi)
        if follow.phase(run.view.target_vmim) == "Succeeded" and follow.phase(run.view.target_vmi) == "Running":
            if run.view.source_vmim is not None and owned_by(run.view.source_vmim, run):
                self._end_open_sides(run)  # KubeVirt leaves it open once its VMI is deleted
            self._finish(run, follow.SUCCEEDED, f"the VM runs on the target ({said})"
                         + ("; KubeVirt has not yet restored the target VM's run strategy" if
                            follow._still_receiving(run.view.target_vm) else ""))
            return
        self._end(run, follow.FAILED, f"the source migration went away before the target finished ({said})",
                  f"the source VM was deleted or stopped during the migration; `kubectl dlm cleanup {run.vm}` "
                  "removes what this attempt left", now)

    def _gather_evidence(self, run: Run) -> None:
        view = run.view
        view.source_vmi = kube.get(self.source, "VirtualMachineInstance", self.settings.source_namespace, run.vm)
        events = []
        for cluster, ns, vmim in ((self.source, self.settings.source_namespace, view.source_vmim),
                                  (self.target, self.settings.target_namespace, view.target_vmim)):
            if vmim is not None and meta(vmim).get("uid"):
                events.extend(inventory.events_of(cluster, ns, meta(vmim)["uid"]))
        view.events = events

    def _end_open_sides(self, run: Run) -> List[tuple]:
        """Delete this migration's VMIMs that are not final (as `cancel` does) and say so."""
        ended = []
        for side, cluster, ns, vmim in self._open_sides(run):
            name = meta(vmim)["name"]
            try:
                kube.delete(cluster, "VirtualMachineInstanceMigration", ns, name)
            except DlmError as exc:
                self.reporter.notice(f"{run.vm}: could not end the {side} migration {ns}/{name}: {exc.message}")
                continue
            self.reporter.event(run.vm, f"ending the {side} migration {ns}/{name} on {cluster.context} (deleted, as "
                                        "`kubectl dlm cancel` does): KubeVirt does not end it when the other side fails")
            ended.append((side, f"{ns}/{name}"))
        return ended

    def _open_sides(self, run: Run) -> List[tuple]:
        """(side, cluster, namespace, VMIM) of this run's VMIMs that are neither final nor being deleted."""
        sides = (("source", self.source, self.settings.source_namespace, run.view.source_vmim),
                 ("target", self.target, self.settings.target_namespace, run.view.target_vmim))
        return [(side, cluster, ns, vmim) for side, cluster, ns, vmim in sides
                if vmim is not None and follow.phase(vmim) not in inventory.FINAL and owned_by(vmim, run)
                and not meta(vmim).get("deletionTimestamp")]

    def _progress(self, run: Run, result: follow.Assessment) -> Optional[Dict[str, Any]]:
        if self.metrics is None or result.source_phase != "Running":
            return None
        return self.metrics.progress(self.settings.source_namespace, run.vm)

    def _finish(self, run: Run, outcome: str, message: str = "", hint: str = "") -> None:
        run.outcome, run.message, run.hint, run.step = outcome, message, hint, "done"
        if outcome in (follow.SUCCEEDED, follow.FAILED, follow.CANCELLED) and not self.dry_run:
            self._drop_policy(run)
        self.reporter.finished(run)

    def _drop_policy(self, run: Run) -> None:
        """The MigrationPolicy of the tuning flags, once the migration is over: KubeVirt read it at the
        hand-off (pkg/virt-controller/watch/migration/migration.go:1259 @v1.9.0) and a new attempt gets
        a new migration ID, so nothing will match it again. On a failure `cleanup` would remove it too."""
        for obj in run.docs.get("prepare", []):
            if obj.get("kind") != "MigrationPolicy":
                continue
            try:
                if kube.delete(self.target, "MigrationPolicy", None, meta(obj)["name"]):
                    self.reporter.event(run.vm, f"deleted MigrationPolicy {meta(obj)['name']} on {self.target.context} "
                                                "(the migration is over)")
            except DlmError as exc:
                self.reporter.notice(f"{run.vm}: could not delete MigrationPolicy {meta(obj)['name']}: {exc.message}; "
                                     f"`kubectl dlm cleanup {run.vm}` removes it")

    def run(self, runs: List[Run]) -> List[Run]:
        """Carry out every run, at most `parallel` migrations at a time and `ahead` more being
        prepared; one VM's failure does not stop the others."""
        if self.dry_run:
            for run in runs:
                try:
                    later = self._dry_run(run)
                except DlmError as exc:  # an API server (or its admission webhooks) rejected an object
                    self._finish(run, REFUSED, exc.message, exc.hint or "fix what the API server names, then try again")
                    continue
                self._finish(run, DRY_RUN, "the API servers accepted every object they can check; nothing was changed"
                             + (f"; validated at run time: {'; '.join(later)}" if later else ""))
            return runs
        self._start_watchers()
        deadline = time.monotonic() + self.timeout if self.timeout else None
        waiting, active = list(runs), self._active
        try:
            while waiting or active:
                started = False
                while waiting and len(active) < self.parallel + self.ahead:
                    run = waiting.pop(0)
                    run.started = time.monotonic()
                    active.append(run)
                    started = True
                # a run just started (or a slot just freed) has work to do now: do not wait for an event first
                for event in drain(self.events, 0.0 if started else 0.5):
                    self._observe(runs, event)
                now = time.monotonic()
                for run in list(active):
                    try:
                        self._advance(run, now)
                    except Conflict as exc:
                        self._finish(run, REFUSED, exc.message, exc.hint)
                    except DlmError as exc:
                        self._finish(run, follow.FAILED, exc.message, exc.hint)
                    if run.step == "done":
                        active.remove(run)
                if deadline and now > deadline:
                    for run in active + waiting:
                        stuck = disks.assess(_disk_names(run), run.disks).waiting if run.step == "wait-disks" else []
                        self._finish(run, follow.TIMED_OUT, f"--timeout of {int(self.timeout)}s reached"
                                     + (f" waiting for target disk(s): {'; '.join(stuck)}" if stuck else ""),
                                     f"the migration was left as it is: `kubectl dlm status {run.vm} --watch` "
                                     f"to keep following, `kubectl dlm cancel {run.vm}` to stop it")
                    break
        finally:
            self.stop()
        return runs


def _disk_names(run: Run) -> List[str]:
    """The blank DataVolumes this run creates (prepare phase)."""
    return [meta(o)["name"] for o in run.docs.get("prepare", []) if o.get("kind") == "DataVolume"]


def _rendered_url(run: Run) -> Optional[str]:
    """The connectURL of the source VMIM in the bundle, if it was rendered."""
    for obj in run.docs.get("send", []):
        return ((obj.get("spec") or {}).get("sendTo") or {}).get("connectURL")
    return None
