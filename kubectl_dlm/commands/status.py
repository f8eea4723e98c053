"""`kubectl dlm status`: where a migration stands, on both clusters."""

from __future__ import annotations

import click

from kubectl_dlm.commands.follow_options import follow_flags
from kubectl_dlm.formats import output_option
from kubectl_dlm.options import source_options, target_options

EXAMPLES = """
\b
Examples:
  kubectl dlm status my-vm -n prod --to-context east
  kubectl dlm status my-vm -n prod --to-namespace prod-b --watch
\b
  # Every column, or a table for a change ticket:
  kubectl dlm status vm-1 vm-2 -n prod --to-context east -o wide
  kubectl dlm status my-vm -n prod --to-context east -o markdown >> ticket.md
\b
With --watch, -o table/wide is the live display and -o json one event per line.
Exit codes: 0 ok, 4 no migration of the VM found, 10 a migration failed.
"""

# -o for --watch: the live display (auto: lines that update on a terminal) or JSON events.
WATCH_OUTPUT = {"table": "auto", "wide": "auto", "json": "json"}


@click.command(epilog=EXAMPLES)
@click.argument("vms", nargs=-1, required=True, metavar="VM...")
@source_options
@target_options
@click.option("-w", "--watch", is_flag=True, help="Follow the migration until it ends.")
@follow_flags
@output_option("one row per VM, what blocks it below the row")
def status(vms, kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, watch,
           timeout, sync_timeout, prometheus_url, output) -> int:
    """Show the phase of each side, blocking conditions in plain words, and the outcome."""
    from kubectl_dlm import errors, execute, manage, status_view

    if watch and output not in WATCH_OUTPUT:
        raise errors.UsageError(f"--watch prints a live display or JSON events, not -o {output}",
                                "use -o table or -o json with --watch, or leave out --watch")
    sides = manage.connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, vms)
    if watch:
        return _watch(sides, vms, execute.FollowOptions(timeout=timeout, sync_timeout=sync_timeout,
                                                        prometheus_url=prometheus_url, output=WATCH_OUTPUT[output]))
    rows = [manage.status(sides, vm) for vm in vms]
    click.echo(status_view.format_rows(rows, output), nl=False)
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
                    metrics=execute._metrics(options, reporter, sides.source))
    return execute._carry_out(engine, runs, [], reporter)
