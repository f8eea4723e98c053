"""Strip what the server or the source cluster wrote, keep what the user wrote. Pure.

Metadata is rebuilt from an allowlist (name, namespace, labels, annotations); spec bodies are
copied untouched so that empty maps which carry meaning (`masquerade: {}`, `pod: {}`,
`blank: {}`) survive.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Mapping

# Annotations that describe the source object's life on its own cluster, not the object.
DROPPED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubevirt.io/latest-observed-api-version",
    "kubevirt.io/storage-observed-api-version",
    "kubevirt.io/restore-run-strategy",
    "kubevirt.io/create-migration-target",
    "kubemacpool.io/transaction-timestamp",
    "cdi.kubevirt.io/storage.pod.phase",
    "cdi.kubevirt.io/storage.condition.running",
    "cdi.kubevirt.io/storage.condition.running.message",
    "cdi.kubevirt.io/storage.condition.running.reason",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
)
DROPPED_ANNOTATION_PREFIXES = ("dlm.kubevirt-tools.io/",)
DROPPED_LABEL_PREFIXES = ("dlm.kubevirt-tools.io/",)


def labels(obj: Mapping[str, Any]) -> Dict[str, str]:
    found = (obj.get("metadata") or {}).get("labels") or {}
    return {k: v for k, v in found.items() if not k.startswith(DROPPED_LABEL_PREFIXES)}


def annotations(obj: Mapping[str, Any]) -> Dict[str, str]:
    found = (obj.get("metadata") or {}).get("annotations") or {}
    return {
        k: v
        for k, v in found.items()
        if k not in DROPPED_ANNOTATIONS and not k.startswith(DROPPED_ANNOTATION_PREFIXES)
    }


def template_metadata(metadata: Mapping[str, Any]) -> Dict[str, Any]:
    """Pod-template style metadata: `creationTimestamp: null` is noise the API server writes."""
    cleaned = copy.deepcopy(dict(metadata))
    cleaned.pop("creationTimestamp", None)
    for key in ("uid", "resourceVersion", "generation", "managedFields", "ownerReferences", "finalizers"):
        cleaned.pop(key, None)
    return cleaned
