"""`kubectl dlm cancel`: stop a running migration on both clusters."""

from __future__ import annotations

import click

from kubectl_dlm.options import source_options, target_options


@click.command(epilog="\b\nExamples:\n  kubectl dlm cancel my-vm -n prod --to-context east")
@click.argument("vms", nargs=-1, required=True, metavar="VM...")
@source_options
@target_options
@click.option("--timeout", type=click.FloatRange(min=1), default=120, show_default=True, metavar="SECONDS",
              help="How long to wait for KubeVirt to let go of the migrations.")
def cancel(vms, kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, timeout) -> int:
    """Delete both migrations (KubeVirt does not propagate a cancel across clusters) and wait.

    The source VM keeps running; the target VM goes back to waiting. Running it again is harmless.
    """
    from kubectl_dlm import manage

    sides = manage.connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, vms)
    for vm in vms:
        report = manage.cancel(sides, vm, timeout)
        what = f"deleted {', '.join(report.deleted)}" if report.deleted else "nothing to cancel (no running migration)"
        click.echo(f"{vm}: {what}\n  source VMI: {report.source_vmi_phase}\n  target VMI: {report.target_vmi_phase}")
        if report.deleted:
            click.echo(f"  next: `kubectl dlm cleanup {vm}` removes the target VM and disks before a new attempt")
    return 0
