"""`kubectl dlm migrate`: render the bundle and carry it out, following it to the end."""

from __future__ import annotations

import click

from kubectl_dlm.commands.follow_options import follow_options
from kubectl_dlm.options import mapping_options, tuning_options, parallel_option, selection_options, source_options, target_options

EXAMPLES = """
\b
Examples:
  # Move a VM to another namespace of the same cluster:
  kubectl dlm migrate my-vm -n prod --to-namespace prod-b
\b
  # Evacuate every VM labelled app=web to another cluster, three at a time:
  kubectl dlm migrate -l app=web -n prod --to-context east --parallel 3
\b
  # As many at once as the clusters' own migration limits let run:
  kubectl dlm migrate -l app=web -n prod --to-context east --parallel auto
\b
  # Tune this migration only (KubeVirt applies it through a MigrationPolicy for this VM alone):
  kubectl dlm migrate my-vm -n prod --to-context east --bandwidth 256Mi --completion-timeout-per-gib 300
\b
  # Let the API servers validate everything, change nothing:
  kubectl dlm migrate my-vm -n prod --to-context east --dry-run=server
\b
  # Move, verify, and halt the old copy for good (annotated with where it went):
  kubectl dlm migrate my-vm -n prod --to-context east --retire-source
\b
  # Move it back later: the retired copy on the old cluster is replaced (listed first):
  kubectl dlm migrate my-vm -n prod --context east --to-context west --replace-retired --retire-source
\b
Exit codes: 0 succeeded and verified, 3 refused before starting (also: a retired copy is in the
way, see --replace-retired), 10 failed, 11 timed out, 12 cancelled, 13 moved but verify fails,
130 interrupted (the migration keeps running).
"""


@click.command(epilog=EXAMPLES)
@selection_options
@source_options
@target_options
@mapping_options
@tuning_options
@follow_options
@parallel_option
@click.option("--dry-run", type=click.Choice(("server",)), default=None,
              help="server: send every object with dryRun; nothing is changed.")
@click.option("--skip-checks", is_flag=True, help="Do not run the pre-flight checks first (not recommended).")
@click.option("--retire-source", is_flag=True,
              help="Once verified, halt the source VM and annotate it (and its disks) with where it went.")
@click.option("--replace-retired", is_flag=True,
              help="Moving back: delete the retired copy an earlier move left where this VM goes (listed first).")
@click.option("--keep-retired-disks", is_flag=True,
              help="Moving back: keep the retired copy's disks; the new disks get other claim names (CLAIM-ID).")
def migrate(timeout, sync_timeout, prometheus_url, output, parallel, dry_run, skip_checks, retire_source,
            replace_retired, keep_retired_disks, **flags) -> int:
    """Migrate running VMs to another namespace or cluster, follow them to the end, and verify.

    After a success `kubectl dlm verify` runs (exit 13 when a fact does not hold). A source that
    KubeVirt leaves startable (runStrategy Manual, Once, RerunOnFailure, legacy `running`) gets a
    warning, unless --retire-source halts it. Nothing is deleted on the source.
    """
    from kubectl_dlm import aftercare, execute, pipeline

    request = pipeline.Request.from_flags(flags, secrets=flags["secrets"] or "include")
    options = execute.FollowOptions(timeout=timeout, sync_timeout=sync_timeout, parallel=parallel,
                                    prometheus_url=prometheus_url, output=output, dry_run=dry_run == "server")
    after = aftercare.AfterOptions(retire_source=retire_source, replace_retired=replace_retired,
                                   keep_retired_disks=keep_retired_disks)
    return execute.migrate(request, options, skip_checks=skip_checks, after=after)
