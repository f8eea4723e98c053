"""`kubectl dlm render`: print or write the migration bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kubectl_dlm import errors
from kubectl_dlm.options import mapping_options, tuning_options, selection_options, source_options, target_options

PHASE_CHOICES = ("prepare", "receive", "send")

RENDER_EXAMPLES = """
\b
Examples:
  # Same cluster, another namespace, straight into kubectl (one phase at a time):
  kubectl dlm render my-vm -n prod --to-namespace prod-b --phase prepare | kubectl apply -f -
\b
  # The same as one JSON List, for jq or tools that read JSON:
  kubectl dlm render my-vm -n prod --to-namespace prod-b -o json
\b
  # Another cluster, written to a directory for review in Git:
  kubectl dlm render my-vm -n prod --to-context east --output-dir migration/my-vm
\b
  # No cluster access at all, from an export:
  kubectl get vm,vmi,dv,pvc,secret,cm,virtualmachineinstancetypes,virtualmachinepreferences,controllerrevisions \\
    -n prod -o yaml > exported-vm.yaml
  kubectl dlm render -f exported-vm.yaml --to-namespace dst --connect-url 10.0.0.5:9185
\b
  # Several VMs, mapping storage classes:
  kubectl dlm render -l app=db -n prod --to-context east --storage-class-map local=ceph-rbd
\b
  # This migration only: 64 MiB/s and post-copy (a MigrationPolicy in the bundle, on the target):
  kubectl dlm render my-vm -n prod --to-context east --bandwidth 64Mi --allow-post-copy --output-dir migration/my-vm
\b
  # The built-in example, no cluster needed:
  kubectl dlm render --example
"""


@click.command(epilog=RENDER_EXAMPLES)
@selection_options
@click.option("-f", "--filename", metavar="FILE", help="Read the source objects from FILE ('-' for stdin) instead of a cluster.")
@click.option("--example", is_flag=True, help="Render the built-in example VM (no cluster needed).")
@source_options
@target_options
@mapping_options
@tuning_options
@click.option("--phase", "phases", multiple=True, type=click.Choice(PHASE_CHOICES),
              help="Only this phase: prepare (target), receive (target), send (source). Repeatable; default all.")
@click.option("--side", type=click.Choice(("source", "target", "all")), default="all", show_default=True,
              help="Only the objects for this cluster.")
@click.option("-o", "--output", type=click.Choice(("yaml", "json")), default="yaml", show_default=True,
              help="Format on stdout: yaml (documents headed by phase and cluster) or json (one v1 List).")
@click.option("--output-dir", type=click.Path(path_type=Path), help="Write a reviewable directory tree instead of stdout.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output-dir.")
@click.option("--template-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Templates that override the built-in ones, by file name.")
def render(example, phases, side, output, output_dir, overwrite, **flags) -> None:
    """Render the migration bundle of one or more running VMs as YAML.

    The bundle has three phases, applied in order: prepare (on the target: copied Secrets and
    ConfigMaps, blank DataVolumes, the receiving VM), receive (on the target, once the receiving
    VMI is WaitingForSync: the target migration), and send (on the source: the source migration).
    """
    from kubectl_dlm import bundle, pipeline

    if example:
        if flags["filename"] or flags["vms"] or flags["selector"]:
            raise errors.UsageError("--example takes no VM, -l or -f")
        flags.update(filename=str(example_path()), to_namespace=flags["to_namespace"] or "example-dst",
                     connect_url=flags["connect_url"] or "192.0.2.20:9185")
    if output_dir is not None and output == "json":
        raise errors.UsageError("-o json prints to stdout; --output-dir writes a YAML tree", "use one of them")
    default_secrets = "reference" if output_dir else "include"
    request = pipeline.Request.from_flags(flags, secrets=flags["secrets"] or default_secrets)
    sides = ("source", "target") if side == "all" else (side,)
    result = pipeline.run(request, phases=phases or None, sides=sides if output_dir is None else None,
                          after=output_dir is not None)
    for vm in result.plan.vms:
        for warning in vm.warnings:
            _note(f"warning: {vm.vm}: {warning}")
        for prerequisite in vm.prerequisites:
            _note(f"note: {vm.vm} needs {prerequisite}")
        for note in vm.notes:
            _note(f"note: {vm.vm}: {note}")
    if output_dir is not None:
        bundle.write_tree(bundle.tree(result.plan, result.docs, result.after), output_dir, overwrite)
        _note(f"wrote {len(result.docs)} objects for {len(result.plan.vms)} VM(s) to {output_dir}/ "
              f"(see {output_dir}/{bundle.SUMMARY_FILE}); apply with: kubectl dlm apply -f {output_dir}")
    else:
        sys.stdout.write(bundle.stream_json(result.docs) if output == "json" else bundle.stream(result.docs, result.plan))
        sys.stdout.flush()
        _stream_notes(result, phases)
    for vm in result.plan.vms:
        for ref in vm.secret_refs:
            _note(f"note: Secret {ref.source_namespace}/{ref.name} ({ref.type}) is not in the bundle "
                  f"(--secrets {request.secrets}); the target needs it in namespace {ref.target_namespace}")


def _stream_notes(result, phases) -> None:
    copied = [d for d in result.docs if d.item.kind == "Secret"]
    if copied:
        _note(f"note: the bundle includes {len(copied)} Secret(s) copied from the source, with their data; "
              "use --secrets reference to leave the data out")
    if not phases and {d.item.phase for d in result.docs} >= {"prepare", "receive"}:
        _note("note: apply the phases in order: --phase prepare, wait for the target VMI to be WaitingForSync, "
              "then --phase receive and --phase send (or let `kubectl dlm migrate` do it)")


def _note(message: str) -> None:
    click.echo(message, err=True)


def example_path() -> Path:
    """example.yaml as JSON (`make example-json`): the json module reads it ~80x faster than the
    pure-Python YAML parser, which was the largest part of `render --example` after the imports."""
    return Path(__file__).resolve().parent.parent / "example.json"
