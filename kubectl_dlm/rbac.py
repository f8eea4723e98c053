"""`kubectl dlm rbac`: the Roles, ClusterRoles and bindings a subject needs, from the permission
table `check` asks about (checks.gather.required_access), so the two never drift. Pure.

Namespaced accesses become a Role per namespace; cluster-wide ones (listing KubeVirt CRs, getting
the target Namespace) a ClusterRole, narrowed by resourceNames where the table names the object.
The table holds every request the commands make, the optional ones too (progress through the pod
proxy, Events): tests/e2e/test_rbac_audit.py holds it against the API servers' audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

from kubectl_dlm.checks.facts import Access
from kubectl_dlm.errors import UsageError
from kubectl_dlm.model import MANAGED_BY, MANAGER, Item

SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


@dataclass(frozen=True)
class Subject:
    kind: str  # User | Group | ServiceAccount
    name: str
    namespace: str = ""  # ServiceAccount only

    def to_dict(self) -> Dict[str, str]:
        if self.kind == "ServiceAccount":
            return {"kind": "ServiceAccount", "name": self.name, "namespace": self.namespace}
        return {"apiGroup": "rbac.authorization.k8s.io", "kind": self.kind, "name": self.name}


def subject(user: str = "", group: str = "", serviceaccount: str = "") -> Subject:
    given = [(k, v) for k, v in (("User", user), ("Group", group), ("ServiceAccount", serviceaccount)) if v]
    if len(given) != 1:
        raise UsageError("give exactly one of --user, --group, --serviceaccount",
                         "e.g. --serviceaccount gitops:migrator or --user alice")
    kind, value = given[0]
    if kind != "ServiceAccount":
        return Subject(kind, value)
    namespace, _, name = value.partition(":")
    if not namespace or not name:
        raise UsageError(f"--serviceaccount {value!r} is not NAMESPACE:NAME", "e.g. --serviceaccount gitops:migrator")
    return Subject(kind, name, namespace)


def rules(accesses: Iterable[Access]) -> Dict[str, List[Dict[str, List[str]]]]:
    """namespace ("" = cluster-wide) -> RBAC rules: per (group, resource, object name) the verbs
    merged, then the objects named with the same verbs in one rule's resourceNames."""
    merged: Dict[Tuple[str, str, str, str], set] = {}
    for a in accesses:
        merged.setdefault((a.namespace, a.group, a.resource, a.name), set()).add(a.verb)
    names: Dict[Tuple[str, str, str, Tuple[str, ...], bool], List[str]] = {}
    for (namespace, group, resource, name), verbs in sorted(merged.items()):
        names.setdefault((namespace, group, resource, tuple(sorted(verbs)), bool(name)), []).append(name)
    out: Dict[str, List[Dict[str, List[str]]]] = {}
    for (namespace, group, resource, verbs, named), objects in sorted(names.items()):
        rule = {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
        if named:
            rule["resourceNames"] = objects
        out.setdefault(namespace, []).append(rule)
    return out


def items(required: Dict[str, List[Access]], who: Subject, name: str, same_cluster: bool) -> List[Item]:
    """Role/RoleBinding per namespace and ClusterRole/ClusterRoleBinding, for each cluster (side)."""
    sides = {"source": required["source"] + required["target"]} if same_cluster else required
    labels = {MANAGED_BY: MANAGER}
    out: List[Item] = []
    for side, accesses in sides.items():
        for namespace, role_rules in rules(accesses).items():
            kind = "Role" if namespace else "ClusterRole"
            context = {"name": name, "namespace": namespace, "labels": labels, "rules": role_rules,
                       "subjects": [who.to_dict()], "role_kind": kind}
            out.append(Item(side, "rbac", kind, namespace, name, "rbac-role.yaml.j2", context, ""))
            out.append(Item(side, "rbac", kind + "Binding", namespace, name, "rbac-binding.yaml.j2", context, ""))
    return out
