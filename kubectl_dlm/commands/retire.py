"""`kubectl dlm retire`: stop the old copy for good after a verified move; delete it only when asked."""

from __future__ import annotations

import click

from kubectl_dlm.options import source_options, target_options

EXAMPLES = """
\b
Examples:
  # After a move: halt the source VM and mark it (and its disks) with where it went:
  kubectl dlm retire my-vm -n prod --to-context east
\b
  # Later, delete the source VM but keep its disks (lists them, asks first):
  kubectl dlm retire my-vm -n prod --to-context east --delete-vm
\b
  # Delete the VM and its disks without asking (automation):
  kubectl dlm retire my-vm -n prod --to-context east --delete-vm --delete-disks --yes
\b
Refuses (exit 3) unless `kubectl dlm verify` passes for the VM. Nothing is deleted without
--delete-vm / --delete-disks, and nothing without confirmation or --yes.
"""


@click.command(epilog=EXAMPLES)
@click.argument("vms", nargs=-1, required=True, metavar="VM...")
@source_options
@target_options
@click.option("--migration-id", metavar="ID", help="The move to verify first (default: the newest that succeeded).")
@click.option("--delete-vm", is_flag=True, help="Also delete the source VM (its disks stay unless --delete-disks).")
@click.option("--delete-disks", is_flag=True, help="Also delete the source VM's DataVolumes and claims.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@click.option("--dry-run", is_flag=True, help="Show what would be changed and deleted; change nothing.")
def retire(vms, kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, migration_id,
           delete_vm, delete_disks, yes, dry_run) -> int:
    """Halt the source VM of a verified move and annotate where it went; optionally delete it.

    Sets runStrategy Halted (KubeVirt halts only a runStrategy Always source) and the annotations
    dlm.kubevirt-tools.io/migrated-to (CLUSTER/NAMESPACE/NAME), migration-id and migrated-at on
    the VM and its disks, so nobody starts the stale copy by accident and a move back knows it.
    """
    from kubectl_dlm import aftercare, manage

    sides = manage.connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace)
    for vm in vms:
        verdict = aftercare.verify_vm(sides, vm, migration_id)
        for line in aftercare.retire_source(sides, verdict, dry_run=dry_run):
            click.echo(f"{vm}: {'would set ' if dry_run else ''}{line}")
        if delete_vm or delete_disks:
            doomed = aftercare.source_deletion(sides, vm, delete_vm, delete_disks)
            if not doomed:
                click.echo(f"{vm}: nothing to delete on {sides.source.context}/{sides.source_namespace}")
                continue
            listing = "".join(f"  {d}\n" for d in doomed)
            if dry_run:
                click.echo(f"{vm}: would delete on {sides.source.context}:\n{listing}", nl=False)
                continue
            aftercare.confirm(f"{vm}: delete on {sides.source.context}:\n{listing}", yes)
            done = aftercare.delete(sides.source, doomed)
            click.echo(f"{vm}: deleted on {sides.source.context}:\n" + "".join(f"  {d}\n" for d in done), nl=False)
    return 0

