"""Kubeconfig handling as kubectl does it: --kubeconfig, else a ':'-separated $KUBECONFIG, the
context's namespace as the default -n. Nothing is contacted here."""

from __future__ import annotations

import os

from kubectl_dlm import kube

ONE = """apiVersion: v1
kind: Config
current-context: one
clusters: [{name: one, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: one, context: {cluster: one, user: u, namespace: ns-one}}]
"""
TWO = """apiVersion: v1
kind: Config
clusters: [{name: two, cluster: {server: "https://127.0.0.1:2"}}]
users: [{name: u2, user: {token: t}}]
contexts: [{name: two, context: {cluster: two, user: u2}}]
"""


def test_colon_separated_kubeconfig_merges_like_kubectl(tmp_path, monkeypatch):
    (tmp_path / "one").write_text(ONE)
    (tmp_path / "two").write_text(TWO)
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "one"), str(tmp_path / "two")]))
    current = kube.connect(None, None)
    assert (current.context, current.namespace, current.server) == ("one", "ns-one", "https://127.0.0.1:1")
    other = kube.connect(None, "two")
    assert (other.context, other.namespace, other.server) == ("two", "default", "https://127.0.0.1:2")


def test_explicit_kubeconfig_wins_over_the_environment(tmp_path, monkeypatch):
    (tmp_path / "one").write_text(ONE)
    (tmp_path / "two").write_text(TWO)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "one"))
    assert kube.connect(str(tmp_path / "two"), "two").server == "https://127.0.0.1:2"
