"""`kubectl dlm trust`: exchange the KubeVirt CA bundles of two clusters, both ways."""

from __future__ import annotations

import json

import click

EXAMPLES = """
\b
Examples:
  # Make clusters west and east trust each other's KubeVirt CA (safe to repeat):
  kubectl dlm trust --context west --to-context east
\b
  # Show what would change, change nothing:
  kubectl dlm trust --context west --to-context east --dry-run
\b
  # KubeVirt installed in another namespace (found from the KubeVirt CR otherwise):
  kubectl dlm trust --context west --to-context east --kubevirt-namespace openshift-cnv
\b
Each cluster's kubevirt-ca ca-bundle is appended to the other's kubevirt-external-ca, minus expired
certificates and those already trusted; virt-operator merges them into kubevirt-ca, which this
command waits for. Only public certificates are read and written. KubeVirt rotates its CA and
drops merged ones after a while: `kubectl dlm migrate` re-posts trust before each migration.
Exit codes: 0 trusted, 4 KubeVirt or its CA ConfigMap not found, 6 cluster unreachable or
forbidden, 11 the operator did not merge in time.
"""


@click.command(epilog=EXAMPLES)
@click.option("--kubeconfig", metavar="PATH", help="Kubeconfig of the first cluster (default: $KUBECONFIG, ~/.kube/config).")
@click.option("--context", metavar="NAME", help="First cluster's context (default: the current context).")
@click.option("--to-context", metavar="NAME", required=True, help="Second cluster's context.")
@click.option("--to-kubeconfig", metavar="PATH", help="Kubeconfig for --to-context (default: the first one's).")
@click.option("--kubevirt-namespace", metavar="NS",
              help="KubeVirt install namespace on both clusters (default: where the KubeVirt CR is).")
@click.option("--to-kubevirt-namespace", metavar="NS", help="KubeVirt install namespace on the second cluster, if it differs.")
@click.option("--dry-run", is_flag=True, help="Show what would be posted; change nothing, do not wait.")
@click.option("--timeout", type=click.FloatRange(min=1), default=120, show_default=True, metavar="SECONDS",
              help="How long to wait for virt-operator to merge the certificates.")
@click.option("-o", "--output", type=click.Choice(("text", "json")), default="text", show_default=True)
def trust(kubeconfig, context, to_context, to_kubeconfig, kubevirt_namespace, to_kubevirt_namespace, dry_run,
          timeout, output) -> int:
    """Make two clusters' KubeVirt synchronization controllers trust each other."""
    from kubectl_dlm import kube
    from kubectl_dlm import trust as trust_mod

    first = kube.connect(kubeconfig, context)
    second = kube.connect(to_kubeconfig or kubeconfig, to_context)
    log = None if output == "json" else click.echo
    result = trust_mod.ensure_trust(first, second, source_namespace=kubevirt_namespace,
                                    target_namespace=to_kubevirt_namespace or kubevirt_namespace,
                                    timeout=timeout, dry_run=dry_run, log=log)
    if output == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return 0
    if result.same_cluster:
        click.echo(f"nothing to do: {result.reason}")
    elif dry_run:
        click.echo("dry run: would post " + str(sum(len(d.add) for d in result.directions)) + " certificate(s); "
                   "nothing was changed" if result.changed else "dry run: nothing would change")
    elif result.changed:
        click.echo(f"trusted: {first.context} and {second.context} accept each other's KubeVirt CA")
    else:
        click.echo(f"nothing changed: {first.context} and {second.context} already trust each other's KubeVirt CA")
    return 0
