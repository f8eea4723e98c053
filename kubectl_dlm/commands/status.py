"""`kubectl dlm status`: where a migration stands, on both clusters."""

from __future__ import annotations

import json

import click

from kubectl_dlm.commands.follow_options import follow_options
from kubectl_dlm.options import source_options, target_options


@click.command(epilog="\b\nExamples:\n  kubectl dlm status my-vm -n prod --to-context east\n"
                      "  kubectl dlm status my-vm -n prod --to-namespace prod-b --watch")
@click.argument("vms", nargs=-1, required=True, metavar="VM...")
@source_options
@target_options
@click.option("-w", "--watch", is_flag=True, help="Follow the migration until it ends.")
@follow_options
def status(vms, kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, watch,
           timeout, sync_timeout, prometheus_url, output) -> int:
    """Show the phase of each side, blocking conditions in plain words, and the outcome."""
    from kubectl_dlm import errors, execute, manage

    sides = manage.connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, vms)
    if watch:
        return _watch(sides, vms, execute.FollowOptions(timeout=timeout, sync_timeout=sync_timeout,
                                                        prometheus_url=prometheus_url, output=output))
    rows = [manage.status(sides, vm) for vm in vms]
    if output == "json":
        click.echo(json.dumps([row.__dict__ for row in rows], indent=2, sort_keys=True))
    else:
        for row in rows:
            click.echo(f"{row.vm}: {row.outcome} (migration {row.migration_id})\n"
                       f"  source migration: {row.source_phase}\n  target migration: {row.target_phase}\n"
                       f"  target VMI: {row.target_vmi_phase}")
            for detail in row.details:
                click.echo(f"  {detail}")
    failed = {r.outcome for r in rows}
    return errors.FAILED if "failed" in failed else 0


def _watch(sides, vms, options) -> int:
    from kubectl_dlm import execute
    from kubectl_dlm.engine import Engine, Run
    from kubectl_dlm.manage import view_of
    from kubectl_dlm.model import Settings
    from kubectl_dlm.progress import Reporter

    reporter = Reporter(options.output)
    runs = []
    for vm in vms:
        migration_id, view = view_of(sides, vm)
        if migration_id is None:
            from kubectl_dlm.errors import NotFound

            raise NotFound(f"no migration of VirtualMachine {sides.source_namespace}/{vm} by kubectl-dlm found")
        run = Run(vm=vm, migration_id=migration_id, docs={}, connect_url=None, step="follow")
        run.sent_at = None  # we did not start it: no sync timeout of ours applies
        runs.append(run)
    settings = Settings(source_namespace=sides.source_namespace, target_namespace=sides.target_namespace)
    engine = Engine(sides.source, sides.target, settings, reporter, timeout=options.timeout,
                    metrics=execute._metrics(options, reporter))
    return execute._carry_out(engine, runs, [], reporter)
