"""Kubernetes' RBAC authorizer, for tests: does a set of Roles/ClusterRoles and bindings allow a request?

The test API server has no RBAC (tests/infra: it allows only system:masters), so the tests judge the
audit log's requests (tests/harness/audit.py) against `kubectl dlm rbac`'s output here, by the rules
kube-apiserver applies:

* rule matching: k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac/rbac.go RuleAllows, with
  pkg/apis/rbac/v1/evaluation_helpers.go VerbMatches, APIGroupMatches, ResourceMatches
  ("resource/subresource", "*", "*/subresource"), ResourceNameMatches (empty = any name) and
  NonResourceURLMatches (a trailing "*" is a prefix);
* which rules apply: pkg/registry/rbac/validation/rule.go VisitRulesFor: a ClusterRoleBinding's
  ClusterRole everywhere; a RoleBinding's Role or ClusterRole only to requests in the binding's
  namespace (for `namespaces` itself the request's namespace is its name:
  k8s.io/apiserver pkg/endpoints/request/requestinfo.go);
* what every signed-in user has anyway, bound to system:authenticated by the bootstrap policy
  (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go): system:discovery (get of /api,
  /apis, /version, /openapi, ... ) and system:basic-user (create self-subject reviews).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from .audit import Request

DISCOVERY_URLS = ("/livez", "/readyz", "/healthz", "/version", "/version/", "/openapi", "/openapi/*",
                  "/api", "/api/*", "/apis", "/apis/*")
BOOTSTRAP = [  # (role, rule) every authenticated user is granted
    ("system:discovery", {"verbs": ["get"], "nonResourceURLs": list(DISCOVERY_URLS)}),
    ("system:basic-user", {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                           "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
    ("system:basic-user", {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
                           "resources": ["selfsubjectreviews"]}),
]


def verb_matches(rule: dict, verb: str) -> bool:
    return any(v in ("*", verb) for v in rule.get("verbs") or ())


def api_group_matches(rule: dict, group: str) -> bool:
    return any(g in ("*", group) for g in rule.get("apiGroups") or ())


def resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    for resource in rule.get("resources") or ():
        if resource in ("*", combined):
            return True
        if subresource and resource == "*/" + subresource:
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or ()
    return not names or name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url in ("*", path) or (url.endswith("*") and path.startswith(url.rstrip("*"))):
            return True
    return False


def rule_allows(rule: dict, request: Request) -> bool:
    if request.is_resource:
        combined = request.resource + (f"/{request.subresource}" if request.subresource else "")
        return (verb_matches(rule, request.verb) and api_group_matches(rule, request.group)
                and resource_matches(rule, combined, request.subresource)
                and resource_name_matches(rule, request.name))
    return verb_matches(rule, request.verb) and non_resource_url_matches(rule, request.path)


@dataclass(frozen=True)
class Grant:
    """One rule of one role, as bound: where it applies ("" = every namespace) and where it came from."""

    role: str  # "Role ns/name", "ClusterRole name"
    index: int
    rule: dict  # the PolicyRule, as YAML gives it
    namespace: str  # the binding's namespace; "" for a ClusterRoleBinding

    def applies(self, request: Request) -> bool:
        return (not self.namespace or self.namespace == request.namespace) and rule_allows(self.rule, request)


def grants(documents: Iterable[dict], subject: dict) -> list[Grant]:
    """The rules `documents` (Roles, ClusterRoles and their bindings) grant to `subject`."""
    docs = [d for d in documents if d]
    roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "ClusterRole")}
    out: list[Grant] = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding") or subject not in binding.get("subjects", []):
            continue
        namespace = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        ref = binding["roleRef"]
        key = (ref["kind"], namespace if ref["kind"] == "Role" else "", ref["name"])
        role = roles.get(key)
        assert role is not None, f"{binding['kind']} {binding['metadata']['name']} refers to a missing {key}"
        label = f"{ref['kind']} {key[1] + '/' if key[1] else ''}{ref['name']}"
        out.extend(Grant(label, i, rule, namespace) for i, rule in enumerate(role.get("rules") or ()))
    return out


def bootstrap_grants() -> list[Grant]:
    return [Grant(f"ClusterRole {name}", i, rule, "") for i, (name, rule) in enumerate(BOOTSTRAP)]


def allowed_by(request: Request, granted: Iterable[Grant]) -> Optional[list[Grant]]:
    """The grants that allow the request (RBACAuthorizer.Authorize stops at the first; all are
    returned here, to tell which rules were used), or None."""
    hits = [g for g in granted if g.applies(request)]
    return hits or None


def atoms(grant: Grant) -> Iterator[tuple]:
    """A rule split into (role, index, verb, group, resource): the units a rule can be unused in."""
    for verb in grant.rule.get("verbs") or ():
        for group in grant.rule.get("apiGroups") or ("",):
            for resource in grant.rule.get("resources") or grant.rule.get("nonResourceURLs") or ():
                yield grant.role, grant.index, verb, group, resource


def used_atoms(request: Request, grant: Grant) -> set:
    """The atoms of `grant` this request uses."""
    out = set()
    for role, index, verb, group, resource in atoms(grant):
        single = {"verbs": [verb], "apiGroups": [group], "resources": [resource],
                  "resourceNames": grant.rule.get("resourceNames") or []}
        if rule_allows(single, request):
            out.add((role, index, verb, group, resource))
    return out
