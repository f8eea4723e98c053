"""`kubectl dlm apply -f DIR`: carry out a bundle that was rendered to a directory and reviewed."""

from __future__ import annotations

from pathlib import Path

import click

from kubectl_dlm.commands.follow_options import follow_options
from kubectl_dlm.options import parallel_option

EXAMPLES = """
\b
Examples:
  kubectl dlm render my-vm -n prod --to-context east --output-dir migration/my-vm
  git add migration/my-vm && git commit   # review it in a pull request
  kubectl dlm apply -f migration/my-vm
  kubectl dlm apply -f migration/my-vm --connect-url 10.0.0.5:9185   # a routable address of your own
  kubectl dlm apply -f migration/my-vm --retire-source   # then halt and mark the old copy
\b
  # A bundle of many VMs, as many at once as the clusters' migration limits allow:
  kubectl dlm apply -f migration/web --parallel auto
\b
It verifies each moved VM at the end (exit 13 when a fact does not hold); migration/my-vm/after-move/
is the VM as your application's repository declares it afterwards (see README "With Argo CD or Flux").
"""


@click.command(epilog=EXAMPLES)
@click.option("-f", "--filename", "directory", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The directory written by `kubectl dlm render --output-dir`.")
@click.option("--kubeconfig", metavar="PATH", help="Kubeconfig (default: $KUBECONFIG, ~/.kube/config).")
@click.option("--context", metavar="NAME", help="Source context (default: the one recorded in the bundle).")
@click.option("--to-context", metavar="NAME", help="Target context (default: the one recorded in the bundle).")
@click.option("--to-kubeconfig", metavar="PATH", help="Kubeconfig for the target context.")
@click.option("--connect-url", metavar="HOST:PORT",
              help="Target synchronization address for the source migration: host:port, [v6]:port or dns:///host:port "
                   "(default: the target migration's live address, read when the source migration is sent).")
@follow_options
@parallel_option
@click.option("--dry-run", type=click.Choice(("server",)), default=None, help="server: validate on the API servers only.")
@click.option("--retire-source", is_flag=True,
              help="Once verified, halt the source VM and annotate it (and its disks) with where it went.")
def apply(directory, kubeconfig, context, to_context, to_kubeconfig, connect_url, timeout, sync_timeout, prometheus_url,
          output, parallel, dry_run, retire_source) -> int:
    """Apply a reviewed bundle in phase order, each object to its cluster, and follow it."""
    from kubectl_dlm import aftercare, execute, kube, options

    connect_url = options.check_connect_url(connect_url)
    index = execute._read_index(directory)
    source = kube.connect(kubeconfig, context or index["source"].get("cluster") or None)
    target_context = to_context or index["target"].get("cluster") or None
    target = kube.connect(to_kubeconfig or kubeconfig, target_context) if target_context != source.context else source
    follow = execute.FollowOptions(timeout=timeout, sync_timeout=sync_timeout, parallel=parallel,
                                   prometheus_url=prometheus_url, output=output, dry_run=dry_run == "server")
    return execute.apply_bundle(directory, source, target, follow, connect_url,
                                aftercare.AfterOptions(retire_source=retire_source))
