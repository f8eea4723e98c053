"""Kubernetes' own name rules, checked before anything is contacted or created. Pure.

The rules are those of k8s.io/apimachinery/pkg/util/validation (IsDNS1123Label,
IsDNS1123Subdomain, IsValidLabelValue); the API server would otherwise reject the object after
the checks passed, and the user would read "migration failed" for a typo.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from kubectl_dlm.errors import UsageError

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_MAX, SUBDOMAIN_MAX = 63, 253
# Our object names are `<vm>-receive-<first 8 of the id>`: the longest suffix we add to a VM name.
NAME_SUFFIX = len("-receive-") + 8


def dns_label_problem(value: str) -> Optional[str]:
    """Why `value` is not an RFC 1123 label (a namespace name), or None."""
    if len(value) > LABEL_MAX:
        return f"it is {len(value)} characters long (at most {LABEL_MAX})"
    if not _LABEL.match(value):
        return "it must consist of lower case letters, digits and '-', and start and end with a letter or digit"
    return None


def dns_subdomain_problem(value: str, longest: int = SUBDOMAIN_MAX) -> Optional[str]:
    """Why `value` is not an RFC 1123 subdomain (most object names), or None."""
    if len(value) > longest:
        return f"it is {len(value)} characters long (at most {longest})"
    if not _SUBDOMAIN.match(value):
        return ("it must consist of lower case letters, digits, '-' and '.', and start and end with a letter "
                "or digit")
    return None


def migration_id_problem(value: str) -> Optional[str]:
    """The migration ID is a label value (63 characters) and its first 8 characters are part of the
    VMIM names, so it must also be lower case: the intersection of the two alphabets."""
    if not value:
        return "it is empty"
    if len(value) > LABEL_MAX:
        return f"it is {len(value)} characters long (at most {LABEL_MAX}: it becomes a label value)"
    if not _LABEL_VALUE.match(value) or not _LABEL.match(value):
        return ("it must consist of lower case letters, digits and '-', and start and end with a letter or digit "
                "(it becomes a label value and part of object names)")
    return None


def check(flag: str, value: Optional[str], problem, what: str, given: str = "") -> None:
    """UsageError naming the flag as given (`given`, else `FLAG VALUE`) when `value` breaks the rule."""
    if value is None:
        return
    why = problem(value)
    if why:
        raise UsageError(f"{given or f'{flag} {value}'}: {value!r} is not a valid {what}: {why}",
                         "Kubernetes would refuse it; see https://kubernetes.io/docs/concepts/overview/working-with-objects/names/")


def check_vm_names(names: Iterable[str]) -> None:
    """VMs are custom resources: their names are RFC 1123 subdomains, short enough for our suffixes."""
    for name in names:
        why = dns_subdomain_problem(name, SUBDOMAIN_MAX - NAME_SUFFIX)
        if why:
            raise UsageError(f"VM name {name!r} is not valid: {why}",
                             "a VirtualMachine name is an RFC 1123 subdomain (lower case letters, digits, '-', '.')")
