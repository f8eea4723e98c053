"""Glue for the commands that change clusters: migrate, apply, status --watch.

plan (or read a reviewed bundle) -> Runs -> Engine -> outcome -> exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from kubectl_dlm import bundle as bundle_mod
from kubectl_dlm import aftercare, checks, clean, errors, follow, ids, inventory, kube, load, pipeline, trust
from kubectl_dlm.engine import REFUSED, Engine, Run
from kubectl_dlm.manage import Sides
from kubectl_dlm.model import (
    ANN_COPY_OF, KINDS, LABEL_MIGRATION_ID, MANAGED_BY, MANAGER, PHASE_SIDE, PHASES, Obj, Settings, meta,
)
from kubectl_dlm.plan import send_item
from kubectl_dlm.progress import Reporter
from kubectl_dlm.render import Renderer

EXIT_BY_OUTCOME = {follow.FAILED: errors.FAILED, follow.TIMED_OUT: errors.TIMED_OUT,
                   follow.CANCELLED: errors.CANCELLED, REFUSED: errors.REFUSED}
SEVERITY = (follow.FAILED, follow.TIMED_OUT, follow.CANCELLED, REFUSED)


@dataclass
class FollowOptions:
    timeout: Optional[float] = None
    sync_timeout: Optional[float] = None
    parallel: Union[int, str] = 1  # or "auto"
    prometheus_url: Optional[str] = None
    output: str = "auto"
    dry_run: bool = False


def exit_code(runs: List[Run]) -> int:
    outcomes = {r.outcome for r in runs}
    for outcome in SEVERITY:
        if outcome in outcomes:
            return EXIT_BY_OUTCOME[outcome]
    return errors.OK


def _metrics(options: FollowOptions, reporter: Reporter, source=None):
    """Prometheus when a URL is given; else the source node's virt-handler through the pod proxy."""
    if not options.prometheus_url:
        if source is None:
            reporter.notice("no --prometheus-url: showing phases only (KubeVirt publishes transfer progress only as metrics)")
            return None
        from kubectl_dlm.metrics import HandlerMetrics

        return HandlerMetrics(source, reporter.notice)
    from kubectl_dlm.metrics import Prometheus

    return Prometheus(options.prometheus_url)


def migrate(request, options: FollowOptions, skip_checks: bool = False,
            after: Optional[aftercare.AfterOptions] = None) -> int:
    after = after or aftercare.AfterOptions()
    reporter = Reporter(options.output)
    planned = pipeline.plan_each(request)
    source, target = planned.clusters["source"], planned.clusters["target"]
    sides = Sides(source, target, planned.settings.source_namespace, planned.settings.target_namespace)
    renderer = Renderer(request.template_dir)
    runs: List[Run] = []
    refused: List[Run] = []
    stale: Dict[str, Any] = {}
    for name, vm_plan in planned.plans.items():
        if not isinstance(vm_plan, errors.DlmError):  # a move back: what an earlier move left there
            try:
                vm_plan, stale[name] = aftercare.stale_for(request, sides, vm_plan, after)
            except errors.DlmError as exc:
                vm_plan = exc
        if isinstance(vm_plan, errors.DlmError):
            run = Run(vm=name, migration_id="-", docs={}, connect_url=None)
            done = _already_migrated(target, planned.settings.target_namespace, name)
            if done:  # a re-run after success (e.g. the first run was killed at the end)
                run.migration_id, run.outcome = done, follow.SUCCEEDED
                run.message = f"already migrated to {target.context}/{planned.settings.target_namespace}"
            else:
                run.outcome, run.message, run.hint = REFUSED, vm_plan.message, vm_plan.hint
            refused.append(run)
            reporter.finished(run)
            continue
        for warning in vm_plan.warnings:
            if "was not rendered" not in warning:
                reporter.notice(f"warning: {name}: {warning}")
        docs: Dict[str, List[Obj]] = {p: [] for p in PHASES}
        for item in vm_plan.items:
            docs[item.phase].append(renderer.render_item(item).data)

        runs.append(Run(vm=name, migration_id=vm_plan.migration_id, docs=docs, connect_url=vm_plan.connect_url,
                        make_send=_send_builder(renderer, planned.settings, name, vm_plan.migration_id),
                        url_pinned=planned.settings.connect_url is not None))
    runs = _isolated(source, target, planned.settings, runs, refused, reporter)
    if runs and not skip_checks and not options.dry_run:
        runs = _checked(request, planned, runs, refused, reporter)
    elif skip_checks:
        reporter.notice("warning: --skip-checks: pre-flight checks were not run")
    if not options.dry_run:
        runs = _made_way(sides, runs, stale, after, refused, reporter)
    if runs and source.server != target.server and not options.dry_run:
        _ensure_trust(source, target, reporter)
    engine = Engine(source, target, planned.settings, reporter, timeout=options.timeout,
                    sync_timeout=options.sync_timeout, dry_run=options.dry_run,
                    parallel=_parallel(options, source, target, planned.settings, runs, reporter),
                    metrics=None if options.dry_run else _metrics(options, reporter, source))
    code = _carry_out(engine, runs, refused, reporter)
    if code == errors.INTERRUPTED or options.dry_run:
        return code
    return _concluded(sides, refused + runs, planned.source, after, reporter, code)


def _made_way(sides: Sides, runs: List[Run], stale: Dict[str, Any], after, refused: List[Run], reporter) -> List[Run]:
    """Before a move back: replace the retired copy an earlier move left, with consent."""
    kept = []
    for run in runs:
        try:
            aftercare.make_way(sides, run.vm, stale[run.vm], after, reporter.event)
            kept.append(run)
        except errors.DlmError as exc:
            run.outcome, run.message, run.hint = REFUSED, exc.message, exc.hint
            refused.append(run)
            reporter.finished(run)
    return kept


def _concluded(sides: Sides, runs: List[Run], source, after, reporter, code: int) -> int:
    """Verify every VM that moved (and retire its source when asked); exit 13 when a fact fails.

    A few VMs at a time (each may wait for KubeVirt to settle its source, and it was ten seconds of
    a ten-VM batch one after the other); what each says is printed VM by VM in the batch's order."""
    from concurrent.futures import ThreadPoolExecutor

    moved = [run for run in runs if run.outcome == follow.SUCCEEDED]

    def conclude(run: Run):
        said: List[tuple] = []
        source_vm = source.get("VirtualMachine", sides.source_namespace, run.vm)
        try:
            return aftercare.conclude(sides, run.vm, run.migration_id, source_vm, after,
                                      lambda vm, message: said.append((vm, message))), said, None
        except errors.DlmError as exc:
            return False, said, exc

    if not moved:
        return code
    failures = []
    with ThreadPoolExecutor(min(CHECK_WORKERS, len(moved))) as pool:
        futures = [pool.submit(conclude, run) for run in moved]
        for run, future in zip(moved, futures):
            verified, said, failure = future.result()
            for vm, message in said:
                reporter.aftercare(vm, message)
            if failure is not None:  # the others went on meanwhile: say what they did, then fail
                failures.append(failure)
            elif not verified:
                reporter.notice(f"{run.vm}: moved, but verify fails: see the rows above; "
                                f"`kubectl dlm verify {run.vm}` with the same flags shows them again")
                code = code if code != errors.OK else errors.NOT_VERIFIED
    if failures:
        raise failures[0]
    return code


def _parallel(options: FollowOptions, source, target, settings: Settings, runs: List[Run], reporter: Reporter) -> int:
    """--parallel N as given; --parallel auto from the clusters' KubeVirt CRs and the VMs' nodes."""
    if options.parallel != "auto":
        return int(options.parallel)
    from kubectl_dlm import parallelism

    def kubevirt(cluster):
        try:
            found = kube.list_objects(cluster, "KubeVirt")
        except errors.DlmError as exc:  # e.g. forbidden: KubeVirt's defaults are still a sound guess
            reporter.notice(f"--parallel auto: {exc.message}; assuming KubeVirt's default limits")
            return None
        return found[0] if found else None

    nodes = []
    for run in runs:
        vmi = kube.get(source, "VirtualMachineInstance", settings.source_namespace, run.vm)
        nodes.append(((vmi or {}).get("status") or {}).get("nodeName") or "")
    same = source.server == target.server
    source_kubevirt = kubevirt(source)
    target_kubevirt = source_kubevirt if same else kubevirt(target)
    chosen, why = parallelism.auto(source_kubevirt, target_kubevirt, same, nodes)
    reporter.notice(f"--parallel auto: {chosen} at a time ({why})")
    return chosen


class _Known:
    """The source VMs as read before the move, in the shape _concluded reads them (Source.get)."""

    def __init__(self, vms: Dict[str, Optional[Obj]]):
        self.vms = vms

    def get(self, kind: str, namespace: str, name: str) -> Optional[Obj]:
        return self.vms.get(name)


def _isolated(source, target, settings: Settings, runs: List[Run], refused: List[Run], reporter: Reporter) -> List[Run]:
    """Refuse, before anything is created, a run whose migration ID another VMI's migration uses on
    either cluster (KubeVirt would pair the wrong sides: ids.py), or whose ID belongs to an earlier
    attempt that must not be resumed (its target failed or is gone)."""
    if not runs:
        return runs
    seen = {"source": inventory.every_vmim(source, [settings.source_namespace])}
    seen["target"] = seen["source"] if target.server == source.server else \
        inventory.every_vmim(target, [settings.target_namespace])
    kept, taken = [], {}
    for run in runs:
        ours = {("source", "send", settings.source_namespace, run.vm),
                ("target", "receive", settings.target_namespace, run.vm)}
        if target.server == source.server:  # one cluster: each side may show up under either name
            ours |= {(c, role, ns, vm) for _, role, ns, vm in list(ours) for c in ("source", "target")}
        foreign = ids.foreign_uses(seen, run.migration_id, ours)
        if run.migration_id in taken:
            run.message = (f"migration ID {run.migration_id} is also the ID of {taken[run.migration_id]} in this run; "
                           "KubeVirt pairs the two sides by the ID alone")
        elif foreign:
            run.message = (f"migration ID {run.migration_id} is already used by {foreign[0].describe()}; KubeVirt pairs "
                           "the two sides of a migration by this ID alone, so it would pair the wrong sides")
        else:
            mine = lambda cluster, role: [v for v in seen[cluster] if ids.migration_id_of(v) == (role, run.migration_id)]
            stale = ids.stale_attempt(mine("source", "send"), mine("target", "receive"))
            if stale is None:
                taken[run.migration_id] = run.vm
                kept.append(run)
                continue
            run.message = stale
            run.hint = (f"`kubectl dlm cleanup {run.vm}` ends it and removes what the attempt left; then migrate again"
                        if "still holds it" not in stale else
                        "check virt-controller on the source cluster; if it stays, remove the migration's finalizers "
                        "(kubectl patch vmim NAME --type=merge -p '{\"metadata\":{\"finalizers\":null}}'), then "
                        f"`kubectl dlm cleanup {run.vm}` and migrate again")
        run.outcome = REFUSED
        run.hint = run.hint or ("leave out --migration-id (a unique ID is derived per VM and attempt), or choose "
                                "another; nothing was created")
        refused.append(run)
        reporter.finished(run)
    return kept


def _already_migrated(target, namespace: str, vm: str) -> Optional[str]:
    """The migration ID of a migration of ours that already succeeded for this VM, if any."""
    for vmim in inventory.vmims(target, namespace, vm):
        labels = meta(vmim).get("labels") or {}
        if follow.phase(vmim) == "Succeeded" and (vmim.get("spec") or {}).get("receive"):
            return labels.get(LABEL_MIGRATION_ID)
    return None


# VMs checked at a time before a batch starts: the checks only read, mostly waiting on the API servers.
CHECK_WORKERS = 4


def _checked(request, planned, runs: List[Run], refused: List[Run], reporter: Reporter) -> List[Run]:
    """Run the same pre-flight checks as `kubectl dlm check VM` for each VM; a VM with a failed check
    does not start. Each VM is checked alone, as before, but on the objects and connections its plan
    read (not connecting and listing the namespace again per VM), a few VMs at a time; the verdicts
    are taken in the batch's order."""
    from concurrent.futures import ThreadPoolExecutor

    source, target = planned.clusters["source"], planned.clusters["target"]
    namespace = planned.settings.source_namespace

    def check(run: Run):
        return checks.run_checks(_copy_request(request, run.vm), read=(planned.source, source, namespace, [run.vm], target))

    with ThreadPoolExecutor(min(CHECK_WORKERS, len(runs))) as pool:
        reports = list(pool.map(check, runs))
    kept = []
    for run, report in zip(runs, reports):
        failed = [c for c in report.rows if c.status == "fail"]
        if failed:
            run.outcome = REFUSED
            run.message = "pre-flight checks failed: " + "; ".join(f"{c.name}: {c.reason}" for c in failed)
            run.hint = "; ".join(dict.fromkeys(c.fix for c in failed if c.fix)) or "see `kubectl dlm check`"
            refused.append(run)
            reporter.finished(run)
        else:
            kept.append(run)
    return kept


def _copy_request(request, vm: str):
    return replace(request, vms=(vm,), selector="")


def _ensure_trust(source, target, reporter: Reporter) -> None:
    changes = trust.ensure_trust(source, target)
    if changes:
        reporter.notice(f"re-posted KubeVirt CA trust between {source.context} and {target.context}")


def _carry_out(engine: Engine, runs: List[Run], refused: List[Run], reporter: Reporter) -> int:
    try:
        engine.run(runs)
    except KeyboardInterrupt:
        engine.stop()
        names = " ".join(r.vm for r in runs if r.outcome is None) or "VM"
        reporter.notice(
            "interrupted: stopped following; the migration keeps running on the clusters.\n"
            f"  resume:   run the same command again, or kubectl dlm status {names} --watch\n"
            f"  cancel:   kubectl dlm cancel {names}\n"
            f"  clean up: kubectl dlm cleanup {names} (after a failure or cancel)")
        return errors.INTERRUPTED
    everything = refused + runs
    reporter.summary(everything)
    return exit_code(everything)


def _send_builder(renderer, settings, vm: str, migration_id: str):
    """The source VMIM, rendered late: only the target VMIM's status may tell the sync address."""

    def build(url: str) -> Obj:
        return renderer.render_item(send_item(settings, vm, migration_id, url)).data

    return build


def apply_bundle(directory: Path, source, target, options: FollowOptions, connect_url: Optional[str] = None,
                 after: Optional[aftercare.AfterOptions] = None) -> int:
    """Carry out a reviewed `render --output-dir` tree; Secrets it lists are copied server to server.

    The source VMIM gets the target migration's live sync address when it is sent (Engine._send_url),
    unless the bundle was rendered with --connect-url or `connect_url` (apply --connect-url) is given."""
    reporter = Reporter(options.output)
    index = _read_index(directory)
    settings = Settings(source_namespace=index["source"]["namespace"], target_namespace=index["target"]["namespace"],
                        source_cluster=index["source"].get("cluster") or "", target_cluster=index["target"].get("cluster") or "")
    runs: Dict[str, Run] = {}
    by_id = {v["migrationID"]: v for v in index.get("vms") or []}
    for entry in index.get("phases") or []:
        for rel in entry.get("files") or []:
            path = directory / rel
            try:
                obj = load.read_text(path.read_text(), str(path), "").objects
            except OSError as exc:
                raise errors.UsageError(f"{path}: cannot read it: {exc.strerror}", "re-render the bundle") from None
            for doc in obj.values():
                mid = (meta(doc).get("labels") or {}).get(LABEL_MIGRATION_ID)
                if mid not in by_id:
                    raise errors.UsageError(f"{path} does not belong to this bundle (migration ID {mid})",
                                            f"it must carry a migration ID listed in {bundle_mod.INDEX_FILE}")
                side = PHASE_SIDE[entry["phase"]]
                want = settings.target_namespace if side == "target" else settings.source_namespace
                if not KINDS.get(doc.get("kind"), (0, 0, 0, True))[3]:
                    want = ""  # cluster-scoped: the MigrationPolicy of the tuning flags (read with namespace "")
                    if not meta(doc).get("namespace"):
                        doc["metadata"].pop("namespace", None)
                if (meta(doc).get("namespace") or "") != want:
                    raise errors.UsageError(
                        f"{path}: {doc.get('kind')} {meta(doc).get('name')} is in namespace {meta(doc).get('namespace')}, "
                        f"but phase {entry['phase']} goes to the {side} namespace {want}",
                        f"fix the file or {bundle_mod.INDEX_FILE}, or re-render the bundle")
                vm = by_id[mid]
                run = runs.setdefault(mid, Run(vm=vm["name"], migration_id=mid, docs={p: [] for p in PHASES},
                                               connect_url=connect_url or vm.get("connectURL") or None,
                                               url_pinned=bool(connect_url) or vm.get("connectURLFrom") == "flag"))
                run.docs[entry["phase"]].append(doc)
    renderer = Renderer()
    for run in runs.values():  # the source VMIM is (re)built with the address known when it is sent
        run.make_send = _send_builder(renderer, settings, run.vm, run.migration_id)
    refused: List[Run] = []
    kept = _isolated(source, target, settings, list(runs.values()), refused, reporter)
    if not kept:
        reporter.summary(refused)
        return exit_code(refused)
    _copy_secrets(index, source, target, reporter, options.dry_run)
    engine = Engine(source, target, settings, reporter, timeout=options.timeout, sync_timeout=options.sync_timeout,
                    parallel=_parallel(options, source, target, settings, kept, reporter),
                    dry_run=options.dry_run,
                    metrics=None if options.dry_run else _metrics(options, reporter, source))
    sides = Sides(source, target, settings.source_namespace, settings.target_namespace)
    before = {run.vm: kube.get(source, "VirtualMachine", settings.source_namespace, run.vm) for run in kept}
    code = _carry_out(engine, kept, refused, reporter)
    if code == errors.INTERRUPTED or options.dry_run:
        return code
    return _concluded(sides, kept, _Known(before), after or aftercare.AfterOptions(), reporter, code)


def _read_index(directory: Path) -> Dict:
    from ruamel.yaml import YAML

    path = directory / bundle_mod.INDEX_FILE
    if not path.is_file():
        raise errors.UsageError(f"{directory} is not a kubectl-dlm bundle (no {bundle_mod.INDEX_FILE})",
                                "render one with kubectl dlm render ... --output-dir DIR")
    index = YAML(typ="safe", pure=True).load(path.read_text())
    if not isinstance(index, dict) or index.get("kind") != bundle_mod.INDEX_KIND:
        raise errors.UsageError(f"{path} is not a kubectl-dlm bundle index")
    return index


def _copy_secrets(index: Dict, source, target, reporter: Reporter, dry_run: bool) -> None:
    """Read each listed Secret on the source and apply it on the target; the data never touches disk."""
    for ref in index.get("secretsToCopy") or []:
        secret = kube.get(source, "Secret", ref["sourceNamespace"], ref["name"])
        if secret is None:
            raise errors.NotFound(f"Secret {ref['sourceNamespace']}/{ref['name']} listed by the bundle is missing on "
                                  f"{source.describe()}", "create it on the source, or re-render the bundle")
        labels = clean.labels(secret)
        labels[MANAGED_BY] = MANAGER
        annotations = clean.annotations(secret)
        annotations[ANN_COPY_OF] = f"{ref['sourceNamespace']}/{ref['name']}"
        copy = {"apiVersion": "v1", "kind": "Secret", "type": secret.get("type") or "Opaque",
                "metadata": {"name": ref["name"], "namespace": ref["targetNamespace"], "labels": labels,
                             "annotations": annotations},
                "data": secret.get("data") or {}}
        if secret.get("immutable") is not None:
            copy["immutable"] = secret["immutable"]
        existing = kube.get(target, "Secret", ref["targetNamespace"], ref["name"])
        if existing is not None and (meta(existing).get("labels") or {}).get(MANAGED_BY) != MANAGER:
            raise errors.Conflict(f"Secret {ref['targetNamespace']}/{ref['name']} already exists on {target.describe()} "
                                  "and was not created by kubectl-dlm; nothing was overwritten",
                                  "remove or rename it, or copy it yourself and drop it from the bundle")
        kube.apply(target, copy, dry_run=dry_run)
        reporter.event(ref["vm"], f"copied Secret {ref['sourceNamespace']}/{ref['name']} to {target.context} "
                                  f"namespace {ref['targetNamespace']} (data not shown)")
