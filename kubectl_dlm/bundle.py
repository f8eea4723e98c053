"""Where rendered documents go: a YAML stream on stdout, or a reviewed tree on disk.

The tree (`--output-dir`) is written to a temporary sibling and renamed into place, so an error
or an interrupt never leaves half a bundle; an existing directory is replaced only with
`--overwrite`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from kubectl_dlm.errors import Conflict, UsageError
from kubectl_dlm.model import AFTER_DIR, HANDS_OFF, PHASE_SIDE, PHASES, Plan, display_name
from kubectl_dlm.render import Document

INDEX_FILE = "dlm-bundle.yaml"
SUMMARY_FILE = "README.md"
INDEX_KIND = "Bundle"
INDEX_API_VERSION = "dlm.kubevirt-tools.io/v1alpha1"


def phase_dir(phase: str) -> str:
    """`1-prepare-target`: the order to apply, the phase, and the cluster it goes to."""
    return f"{PHASES.index(phase) + 1}-{phase}-{PHASE_SIDE[phase]}"


def file_name(doc: Document) -> str:
    return f"{doc.item.kind.lower()}-{doc.item.name}.yaml"


def stream(docs: List[Document], plan: Plan) -> str:
    """The stdout form: one document per object, each headed by where and when it applies."""
    out = io.StringIO()
    for doc in docs:
        item = doc.item
        cluster = _cluster_label(plan, item.side)
        out.write(f"---\n# phase {PHASES.index(item.phase) + 1}/3 {item.phase}, {item.side} cluster{cluster}: "
                  f"{item.kind} {display_name(item.namespace, item.name)}\n")
        out.write(doc.text)
    return out.getvalue()


def stream_json(docs: List[Document]) -> str:
    """-o json: the same objects, in the same order, as one v1 List (what `kubectl get -o json` prints)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    items = [yaml.load(doc.text) for doc in docs]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=4, ensure_ascii=False,
                      default=str) + "\n"


def _cluster_label(plan: Plan, side: str) -> str:
    name = plan.settings.target_cluster if side == "target" else plan.settings.source_cluster
    return f" ({name})" if name else ""


def index(plan: Plan, docs: List[Document]) -> Dict:
    """The machine-readable description of a tree, read back by `kubectl dlm apply -f DIR`."""
    s = plan.settings
    phases = []
    for phase in PHASES:
        files = [f"{phase_dir(phase)}/{file_name(d)}" for d in docs if d.item.phase == phase]
        if files:
            phases.append({"phase": phase, "side": PHASE_SIDE[phase], "path": phase_dir(phase), "files": files})
    return {
        "apiVersion": INDEX_API_VERSION,
        "kind": INDEX_KIND,
        "source": {"cluster": s.source_cluster, "namespace": s.source_namespace},
        "target": {"cluster": s.target_cluster, "namespace": s.target_namespace},
        "secrets": s.secrets,
        # connectURLFrom: flag = --connect-url, which apply keeps; otherwise apply uses the target's live address
        "vms": [{"name": v.vm, "migrationID": v.migration_id, "connectURL": v.connect_url or "",
                 **({"connectURLFrom": "flag"} if s.connect_url else {})} for v in plan.vms],
        "phases": phases,
        "secretsToCopy": [
            {"name": r.name, "sourceNamespace": r.source_namespace, "targetNamespace": r.target_namespace,
             "type": r.type, "keys": list(r.keys), "usedBy": list(r.used_by), "vm": r.vm}
            for v in plan.vms for r in v.secret_refs if s.secrets == "reference"  # omit: the user copies them
        ],
    }


def summary(plan: Plan, docs: List[Document]) -> str:
    s = plan.settings
    lines = ["# kubectl-dlm migration bundle", ""]
    src = f"{s.source_cluster + ' ' if s.source_cluster else ''}namespace {s.source_namespace}"
    dst = f"{s.target_cluster + ' ' if s.target_cluster else ''}namespace {s.target_namespace}"
    lines += [f"From {src} to {dst}.", "", "| VM | migration ID | connect URL |", "|---|---|---|"]
    lines += [f"| {v.vm} | {v.migration_id} | {v.connect_url or '(unknown: see below)'} |" for v in plan.vms]
    lines += ["", "## Apply", "", "Everything at once, in order, on the right clusters, following the migration:", "",
              "    kubectl dlm apply -f .", "", "Or by hand, one phase at a time:", ""]
    for phase in PHASES:
        if any(d.item.phase == phase for d in docs):
            side = PHASE_SIDE[phase]
            ctx = s.target_cluster if side == "target" else s.source_cluster
            flag = f" --context {ctx}" if ctx else ""
            lines.append(f"    kubectl{flag} apply -k {phase_dir(phase)}")
            if phase == "prepare":
                lines.append(f"    kubectl{flag} wait -n {s.target_namespace} vmi --all --for=jsonpath='{{.status.phase}}'=WaitingForSync")
    lines += ["", "## Contents", "", "| phase | cluster | kind | namespace/name |", "|---|---|---|---|"]
    lines += [f"| {d.item.phase} | {d.item.side} | {d.item.kind} | {display_name(d.item.namespace, d.item.name)} |" for d in docs]
    refs = [r for v in plan.vms for r in v.secret_refs]
    if refs and s.secrets == "omit":
        lines += ["", "## Secrets the target needs (not copied by this bundle: --secrets omit)", ""]
        lines += [f"- `{r.target_namespace}/{r.name}` ({r.type}) for {r.vm}, used by {', '.join(r.used_by)}" for r in refs]
    elif refs:
        lines += ["", "## Secrets to copy", "",
                  "Their data is not in this bundle. `kubectl dlm apply -f .` copies them from the source cluster "
                  "to the target, server to server. To copy one by hand:", ""]
        for r in refs:
            lines.append(f"- `{r.source_namespace}/{r.name}` ({r.type}; keys: {', '.join(r.keys) or 'none'}) for {r.vm}, used by {', '.join(r.used_by)}")
        lines += ["", "```sh", "kubectl get secret NAME -n SOURCE_NS -o json | jq 'del(.metadata.uid,.metadata.resourceVersion,"
                  ".metadata.creationTimestamp,.metadata.managedFields,.metadata.ownerReferences) | .metadata.namespace=\"TARGET_NS\"' "
                  "| kubectl --context TARGET apply -f -", "```"]
    notes = [f"- {v.vm}: {p}" for v in plan.vms for p in v.prerequisites] + [f"- {v.vm}: {w}" for v in plan.vms for w in v.warnings]
    if notes:
        lines += ["", "## Prerequisites and warnings", ""] + notes
    policies = [d for d in docs if d.item.kind == "MigrationPolicy"]
    if policies:
        lines += ["", "## Migration tuning", "",
                  "Each MigrationPolicy below carries this migration's own settings (cluster-scoped, on the target). "
                  "KubeVirt matches it once, at the hand-off, against the receiving VMI: it selects the labels "
                  "`dlm.kubevirt-tools.io/migration-id` and `dlm.kubevirt-tools.io/vm` that the receiving VM's "
                  "template carries, in the target namespace only. A policy with more matching labels would win: "
                  "`kubectl dlm check` with the same flags says so. What KubeVirt resolved shows in "
                  "`kubectl dlm status VM` once the migration started. `kubectl dlm migrate`/`apply` delete the policy "
                  "when the migration ends; `kubectl dlm cleanup` and `cancel` delete it too.", ""]
        for d in policies:
            spec = d.item.context["spec"]
            lines.append(f"- {d.item.vm}: `{d.item.name}`: " + ", ".join(f"{k}: {json.dumps(spec[k])}" for k in sorted(spec)))
    sizing = [f"- {v.vm}: {n}" for v in plan.vms for n in v.notes]
    if sizing:
        lines += ["", "## Disk sizes", ""] + sizing
    return "\n".join(lines) + "\n"


def _kustomization(files: List[str]) -> str:
    body = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    return body + "".join(f"- {f}\n" for f in files)


def tree(plan: Plan, docs: List[Document], after: Sequence[Document] = ()) -> List[Tuple[str, str]]:
    """(relative path, content) for every file of the bundle directory, in a stable order.
    `after`: the VMs as declared after the move, in their own folder that `apply` never applies."""
    files: List[Tuple[str, str]] = []
    for phase in PHASES:
        in_phase = [d for d in docs if d.item.phase == phase]
        if not in_phase:
            continue
        names = [file_name(d) for d in in_phase]
        if len(set(names)) != len(names):
            raise UsageError(f"two objects of phase {phase} would share a file name", "render fewer VMs at once")
        for doc, name in zip(in_phase, names):
            files.append((f"{phase_dir(phase)}/{name}", doc.text))
        files.append((f"{phase_dir(phase)}/kustomization.yaml", _kustomization(names)))
    if after:
        names = [file_name(d) for d in after]
        files += [(f"{AFTER_DIR}/{name}", doc.text) for doc, name in zip(after, names)]
        files.append((f"{AFTER_DIR}/kustomization.yaml", _kustomization(names)))
    from kubectl_dlm.emit import ruamel_dumper

    out = io.StringIO()
    description = index(plan, docs)
    if after:
        description["afterMove"] = {"path": AFTER_DIR, "files": [f"{AFTER_DIR}/{file_name(d)}" for d in after]}
    ruamel_dumper().dump(description, out)
    files.append((INDEX_FILE, out.getvalue()))
    files.append((SUMMARY_FILE, summary(plan, docs) + (after_summary(plan, after) if after else "")))
    return files


def after_summary(plan: Plan, after: Sequence[Document]) -> str:
    """The GitOps hand-off: what to commit once the move is verified, and what to undo first."""
    s = plan.settings
    ctx = f" --context {s.target_cluster}" if s.target_cluster else ""
    keys = " ".join(f"{k}-" for k in HANDS_OFF)
    lines = ["", "## After the move: hand the VM to Git", "",
             f"`{AFTER_DIR}/` holds each VM as its application's repository should declare it on the target once "
             "the move is done: the restored run strategy, no `WaitAsReceiver`, no `kubevirt.io/restore-run-strategy`, "
             "none of kubectl-dlm's annotations. `kubectl dlm apply` never applies it.", "",
             "1. `kubectl dlm verify` the VMs (every fact passes).",
             "2. Give the VMs back to your reconciler: the receiving VM carries annotations that keep Argo CD and "
             "Flux from pruning or re-applying it during the move (the blank disks keep theirs):", ""]
    lines += [f"       kubectl{ctx} annotate -n {d.item.namespace} vm/{d.item.name} {keys}" for d in after]
    lines += ["", f"3. Commit `{AFTER_DIR}/` to the application's repository (in place of the old declaration on the "
              "source), then remove this bundle from Git.", ""]
    return "\n".join(lines)


def write_tree(files: List[Tuple[str, str]], dest: Path, overwrite: bool) -> None:
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise Conflict(f"{dest} already exists", "pass --overwrite to replace it, or choose another --output-dir")
    if dest.exists() and not dest.is_dir():
        raise Conflict(f"{dest} exists and is not a directory", "choose another --output-dir")
    parent = dest.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    old: Optional[Path] = None
    try:
        for rel, content in files:
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        os.chmod(staging, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=parent))
            os.rename(dest, old / "bundle")
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not dest.exists():
            os.rename(old / "bundle", dest)  # put the user's directory back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
