"""Anything kubectl can apply, we can apply, byte for byte: characters outside the Basic
Multilingual Plane (emoji) in data and annotations, on the real test API server."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from kubectl_dlm import kube
from tests.harness.clusters import kubectl_path

TEXT = "grüße 😀 𝄞 — 中文 \u2028 end"  # outside the BMP (😀, 𝄞), a line separator, plain non-ASCII


def configmap(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "annotations": {"note": TEXT}},
            "data": {"motd": TEXT, f"k{len(TEXT)}": "🚀"}}


def test_encoded_body_is_utf8_without_surrogate_escapes():
    body = kube.encode({"a": "😀"})
    assert body == '{"a":"😀"}'.encode("utf-8") and b"\\ud83d" not in body


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_apply_stores_what_kubectl_apply_server_side_stores(clusters, namespaces, kind):
    ns = namespaces("source")
    cluster = kube.connect(str(clusters.kubeconfig), "source")
    ours, theirs = configmap("ours", ns), configmap("theirs", ns)
    if kind == "Secret":
        for obj in (ours, theirs):
            data = obj.pop("data")  # Secret data is base64; the Unicode is in the annotation
            obj.update(kind="Secret", type="Opaque",
                       data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})
    stored = kube.apply(cluster, ours)
    assert stored["metadata"]["annotations"]["note"] == TEXT
    proc = subprocess.run([kubectl_path(), "--kubeconfig", str(clusters.kubeconfig), "--context", "source",
                           "apply", "--server-side", "--field-manager", "kubectl-dlm", "-f", "-"],
                          input=json.dumps(theirs, ensure_ascii=False), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours_back = kube.get(cluster, kind, ns, "ours")
    theirs_back = kube.get(cluster, kind, ns, "theirs")
    field = "data"
    assert ours_back[field] == theirs_back[field]
    assert ours_back["metadata"]["annotations"] == theirs_back["metadata"]["annotations"]
    if kind == "ConfigMap":
        assert ours_back["data"]["motd"] == TEXT
    # YAML's other line break, NEL (U+0085), and the BOM: kept as they are too
    odd = {**ours, "metadata": {**ours["metadata"], "name": "odd", "annotations": {"note": "a\x85b\ufeffc"}}}
    kube.apply(cluster, odd)
    assert kube.get(cluster, kind, ns, "odd")["metadata"]["annotations"]["note"] == "a\x85b\ufeffc"
    # applying again is a no-op (same bytes, same field manager): the object does not change
    again = kube.apply(cluster, ours)
    assert again["metadata"]["resourceVersion"] == ours_back["metadata"]["resourceVersion"]
