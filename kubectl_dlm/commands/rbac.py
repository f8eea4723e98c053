"""`kubectl dlm rbac`: the least RBAC a user, group or service account needs to migrate these VMs."""

from __future__ import annotations

import click

from kubectl_dlm.options import mapping_options, tuning_options, selection_options, source_options, target_options

EXAMPLES = """
\b
Examples:
  # What a GitOps service account needs to move my-vm to the east cluster, applied on each side:
  kubectl dlm rbac my-vm -n prod --to-context east --serviceaccount gitops:migrator --side source | kubectl apply -f -
  kubectl dlm rbac my-vm -n prod --to-context east --serviceaccount gitops:migrator --side target \\
    | kubectl --context east apply -f -
\b
  # A same-cluster namespace move, for a user:
  kubectl dlm rbac -l app=db -n prod --to-namespace prod-b --user alice
\b
The rules are the permission table `kubectl dlm check` verifies (the `permissions` row), so the two
never drift: a Role per namespace, a ClusterRole for what is cluster-wide, and their bindings.
"""


@click.command(epilog=EXAMPLES)
@selection_options
@source_options
@target_options
@mapping_options
@tuning_options
@click.option("--user", metavar="NAME", default="", help="Grant to this user.")
@click.option("--group", metavar="NAME", default="", help="Grant to this group.")
@click.option("--serviceaccount", metavar="NAMESPACE:NAME", default="", help="Grant to this service account.")
@click.option("--name", "role_name", metavar="NAME", default="kubectl-dlm", show_default=True,
              help="Name of the Roles, ClusterRoles and bindings.")
@click.option("--side", type=click.Choice(("source", "target")), default=None,
              help="Only one cluster's objects (to pipe into `kubectl apply` on that cluster).")
def rbac(user, group, serviceaccount, role_name, side, **flags) -> int:
    """Print the Roles, ClusterRoles and bindings needed to migrate the VMs, per cluster, as YAML."""
    from kubectl_dlm import checks, pipeline, rbac as rbac_mod
    from kubectl_dlm.render import Renderer

    who = rbac_mod.subject(user, group, serviceaccount)
    request = pipeline.Request.from_flags(flags, secrets=flags["secrets"] or "include")
    facts = checks.gather_for(request)
    renderer = Renderer(request.template_dir)
    items = rbac_mod.items(facts.required, who, role_name, facts.same_cluster)
    out = []
    for item in items:
        if side and item.side != side and not facts.same_cluster:
            continue
        cluster = facts.clusters["source" if facts.same_cluster else item.side].name
        out.append(f"---\n# {item.side if not facts.same_cluster else 'the'} cluster {cluster}: "
                   f"{item.kind} {item.namespace + '/' if item.namespace else ''}{item.name}\n"
                   + renderer.render_item(item).text)
    click.echo("".join(out), nl=False)
    return 0
