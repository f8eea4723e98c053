"""`kubectl dlm report VM`: one archive of both sides for a bug report or a support case."""

from __future__ import annotations

from pathlib import Path

import click

from kubectl_dlm.options import source_options, target_options

EXAMPLES = """
\b
Examples:
  kubectl dlm report my-vm -n prod --to-context east                # writes dlm-report-my-vm.tar.gz
  kubectl dlm report my-vm -n prod --to-namespace prod-b --output-file /tmp/case-1234.tar.gz
\b
In the archive: both sides' VirtualMachine, VirtualMachineInstance, migrations, DataVolumes and
PVCs, a MigrationPolicy a tuned attempt left on the target, the KubeVirt CR, the Events about them, and the plugin's version. Secrets are never read.
Its README.md lists what was left out and why. An existing file is never overwritten (exit 5).
"""


@click.command(epilog=EXAMPLES)
@click.argument("vm", metavar="VM")
@source_options
@target_options
@click.option("--output-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the .tar.gz (default: dlm-report-VM.tar.gz).")
def report(vm, kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, output_file) -> int:
    """Write one archive with what a bug report about migrating VM needs, without Secrets."""
    from kubectl_dlm import __version__, diagnostics, errors, manage, report_gather

    path = output_file or Path(f"dlm-report-{vm}.tar.gz")
    if path.exists():
        raise errors.Conflict(f"{path} already exists", "remove it or give another --output-file")
    sides = manage.connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, [vm])
    contents = report_gather.collect(sides, vm)
    header = diagnostics.header(__version__, vm, {
        "source": f"{sides.source.context}/{sides.source_namespace}",
        "target": f"{sides.target.context}/{sides.target_namespace}"})
    data = diagnostics.archive(contents, header, f"dlm-report-{vm}")
    try:
        with path.open("xb") as f:
            f.write(data)
    except FileExistsError:
        raise errors.Conflict(f"{path} already exists", "remove it or give another --output-file") from None
    except OSError as exc:
        raise errors.UsageError(f"cannot write {path}: {exc.strerror}", "give another --output-file") from None
    click.echo(f"wrote {path}: {len(contents.files)} object file(s), {len(contents.left_out)} item(s) left out "
               "(listed in its README.md)")
    return 0
