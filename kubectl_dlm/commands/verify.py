"""`kubectl dlm verify`: prove from the objects that a move happened live and the old copy is stopped."""

from __future__ import annotations

import json

import click

from kubectl_dlm.options import selection_options, source_options, target_options

EXAMPLES = """
\b
Examples:
  # Right after a move, or days later (works from the objects alone):
  kubectl dlm verify my-vm -n prod --to-context east
\b
  # A gate in CI: one JSON document, exit code 13 when a fact does not hold:
  kubectl dlm verify -l app=web -n prod --to-namespace prod-b -o json | jq '.[] | select(.passed|not)'
\b
Facts: target-running, migrated-live (the target VMI's migrationState records this migration as
completed: not a fresh boot), run-strategy-restored, source-stopped, disks-bound, firmware-uuid,
mac-addresses. Exit codes: 0 every fact holds, 13 a fact does not hold, 4 not found, 6 cluster.
"""


@click.command(epilog=EXAMPLES)
@selection_options
@source_options
@target_options
@click.option("--migration-id", metavar="ID", help="Verify this migration (default: the newest that succeeded).")
@click.option("-o", "--output", type=click.Choice(("table", "json")), default="table", show_default=True,
              help="table: one row per fact with its evidence; json: one document for automation.")
def verify(vms, selector, kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace,
           migration_id, output) -> int:
    """Check that VMs moved live and the source copies are stopped, one row per fact with the evidence."""
    from kubectl_dlm import aftercare, errors, manage

    sides = manage.connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace)
    verdicts = [aftercare.verify_vm(sides, vm, migration_id) for vm in aftercare.select(sides, vms, selector)]
    if output == "json":
        click.echo(json.dumps([v.as_dict() for v in verdicts], indent=2))
    else:
        click.echo("".join(format_verdict(v) for v in verdicts), nl=False)
    return errors.OK if all(v.passed for v in verdicts) else errors.NOT_VERIFIED


def format_verdict(verdict) -> str:
    width = max(len(r.fact) for r in verdict.rows) + 2
    head = f"{verdict.vm}: {'verified' if verdict.passed else 'NOT verified'} (migration {verdict.migration_id or '-'})\n"
    return head + "".join(f"  {r.status:<6}{r.fact:<{width}}{r.evidence}\n" for r in verdict.rows)
