"""`kubectl dlm migrate`: render the bundle and carry it out, following it to the end."""

from __future__ import annotations

import click

from kubectl_dlm.commands.follow_options import follow_options
from kubectl_dlm.options import mapping_options, selection_options, source_options, target_options

EXAMPLES = """
\b
Examples:
  # Move a VM to another namespace of the same cluster:
  kubectl dlm migrate my-vm -n prod --to-namespace prod-b
\b
  # Evacuate every VM labelled app=web to another cluster, three at a time:
  kubectl dlm migrate -l app=web -n prod --to-context east --parallel 3
\b
  # Let the API servers validate everything, change nothing:
  kubectl dlm migrate my-vm -n prod --to-context east --dry-run=server
\b
Exit codes: 0 succeeded, 3 refused before starting, 10 failed, 11 timed out, 12 cancelled,
130 interrupted (the migration keeps running).
"""


@click.command(epilog=EXAMPLES)
@selection_options
@source_options
@target_options
@mapping_options
@follow_options
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True, help="VMs migrated at the same time.")
@click.option("--dry-run", type=click.Choice(("server",)), default=None,
              help="server: send every object with dryRun; nothing is changed.")
@click.option("--skip-checks", is_flag=True, help="Do not run the pre-flight checks first (not recommended).")
def migrate(timeout, sync_timeout, prometheus_url, output, parallel, dry_run, skip_checks, **flags) -> int:
    """Migrate running VMs to another namespace or cluster, and follow them to the end."""
    from kubectl_dlm import execute, pipeline

    request = pipeline.Request.from_flags(flags, secrets=flags["secrets"] or "include")
    options = execute.FollowOptions(timeout=timeout, sync_timeout=sync_timeout, parallel=parallel,
                                    prometheus_url=prometheus_url, output=output, dry_run=dry_run == "server")
    return execute.migrate(request, options, skip_checks=skip_checks)
