"""`kubectl dlm check`: every pre-flight check, one row each; exit 3 when any fails."""

from __future__ import annotations

import click

from kubectl_dlm import errors
from kubectl_dlm.formats import output_option
from kubectl_dlm.options import mapping_options, tuning_options, selection_options, source_options, target_options

EXAMPLES = """
\b
Examples:
  # Before moving a VM to another cluster:
  kubectl dlm check my-vm -n prod --to-context east --to-namespace prod
\b
  # Several VMs, with the storage class mapping the migration will use:
  kubectl dlm check -l app=db -n prod --to-context east --storage-class-map local=ceph-rbd
\b
  # With the tuning flags the migration will use: does KubeVirt choose our MigrationPolicy?
  kubectl dlm check my-vm -n prod --to-context east --bandwidth 64Mi --max-downtime 300ms
\b
  # For automation: one JSON document; exit code 3 when a check failed:
  kubectl dlm check my-vm -n prod --to-namespace prod-b -o json | jq '.checks[] | select(.status=="fail")'
\b
  # For a change ticket: a Markdown table with every column:
  kubectl dlm check my-vm -n prod --to-context east -o markdown > check.md
\b
Statuses: pass; warn (works, with a caveat); fail (the migration would fail: fix it first);
unknown (could not verify, e.g. the server cannot answer an access review: never counted as pass).
Nothing is created or changed, and no connection is opened to a synchronization address.
Exit codes: 0 nothing failed, 3 a check failed, 4 VM not found, 6 a cluster is unreachable.
"""


@click.command(epilog=EXAMPLES)
@selection_options
@source_options
@target_options
@mapping_options
@tuning_options
@output_option("one row per check, the fix below each row that needs one")
def check(output, **flags) -> int:
    """Check that the VMs can be migrated, before anything is created.

    Checks both clusters (DLM enabled, KubeVirt version, CA trust, synchronization addresses,
    your permissions), the target namespace, and for each VM: running and migratable, volumes,
    storage classes, networks, names and MAC addresses already taken on the target, and the
    Secrets, ConfigMaps and instancetypes it references.
    """
    from kubectl_dlm import checks, pipeline

    request = pipeline.Request.from_flags(flags, secrets=flags["secrets"] or "include")
    report = checks.run_checks(request)
    click.echo(checks.format_report(report, output), nl=False)
    return errors.REFUSED if report.failed else errors.OK
