"""`kubectl dlm cleanup`: remove what a failed or cancelled attempt left on the target."""

from __future__ import annotations

import click

from kubectl_dlm.options import source_options, target_options


@click.command(epilog="\b\nExamples:\n  kubectl dlm cleanup my-vm -n prod --to-context east --dry-run\n"
                      "  kubectl dlm cleanup my-vm -n prod --to-context east")
@click.argument("vms", nargs=-1, required=True, metavar="VM...")
@source_options
@target_options
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--force", is_flag=True, help="Also after a success or during a running migration (dangerous).")
def cleanup(vms, kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, dry_run, force) -> int:
    """Remove what a failed or cancelled attempt left: on the target its migrations, the receiving
    VM and the blank DataVolumes; on the source only its migration objects that cannot go on (a
    failed one, or one whose target failed or is gone: KubeVirt never ends those).

    Only objects labelled as created by kubectl-dlm for this VM; never the source VM or its data.
    Copied Secrets and ConfigMaps stay (other VMs may use them). The MigrationPolicy of the tuning
    flags (--bandwidth ...) is removed too, also after a success (it is read at the hand-off only).
    """
    from kubectl_dlm import errors, manage

    sides = manage.connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, vms)
    for vm in vms:
        plan = manage.plan_cleanup(sides, vm)
        if plan.refusal and not force and plan.succeeded and plan.policies:
            # the migration is over: its MigrationPolicy has nothing left to tune; the rest is the running VM
            plan = manage.CleanupPlan(vm, [], policies=plan.policies)
        elif plan.refusal and not force:
            raise errors.Refused(f"will not clean up {vm}: {plan.refusal}", "pass --force if you are sure")
        for note in plan.notes:
            click.echo(f"{vm}: {note}")
        if not plan.objects and not plan.source_objects and not plan.policies:
            click.echo(f"{vm}: nothing to clean up on {sides.target.context}/{sides.target_namespace}")
            continue
        done = manage.run_cleanup(sides, plan, dry_run)
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"{vm}: {verb}:\n" + "".join(f"  {d}\n" for d in done), nl=False)
    return 0
