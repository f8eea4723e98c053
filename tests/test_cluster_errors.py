"""What a user sees when a cluster cannot be used: one precise line, a distinct exit code."""

from __future__ import annotations

import socket

import pytest

from kubectl_dlm import cli, errors


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
current-context: down
clusters:
- name: down
  cluster: {{server: "https://127.0.0.1:{closed_port()}", insecure-skip-tls-verify: true}}
users:
- name: someone
  user: {{token: not-a-secret}}
contexts:
- name: down
  context: {{cluster: down, user: someone, namespace: prod}}
""")
    return path


def test_unreachable_cluster_names_the_cluster_the_context_and_the_verb(kubeconfig, capsys):
    code = cli.run(["render", "vm1", "--kubeconfig", str(kubeconfig)])
    out = capsys.readouterr()
    assert code == errors.CLUSTER
    assert out.out == ""
    first = out.err.splitlines()[0]
    assert first.startswith("error: cannot reach cluster https://127.0.0.1:")
    assert "(context down)" in first and "list virtualmachines in namespace prod" in first
    assert "connection refused" in first
    assert "Traceback" not in out.err and "not-a-secret" not in out.err


def test_unknown_context_lists_the_known_ones(kubeconfig, capsys):
    code = cli.run(["render", "vm1", "--kubeconfig", str(kubeconfig), "--context", "nope"])
    err = capsys.readouterr().err
    assert code == errors.USAGE
    assert "context nope not found" in err and "known contexts: down" in err


def test_missing_kubeconfig_says_how_to_give_one(tmp_path, capsys):
    code = cli.run(["render", "vm1", "--kubeconfig", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == errors.USAGE
    assert "cannot load kubeconfig" in err and "--kubeconfig" in err


def test_forbidden_names_the_cluster_the_context_and_the_verb():
    from kubernetes.client.exceptions import ApiException

    from kubectl_dlm import kube

    exc = ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind":"Status","message":"virtualmachines.kubevirt.io is forbidden: User \\"dev\\" cannot list resource"}'
    cluster = kube.Cluster(context="east", namespace="prod", server="https://east.example:6443", api=None)
    error = kube.api_error(cluster, exc, "list virtualmachines in namespace prod")
    assert error.exit_code == errors.CLUSTER
    assert str(error).startswith("cluster https://east.example:6443 (context east) refused to list virtualmachines "
                                 "in namespace prod: virtualmachines.kubevirt.io is forbidden")
    assert "RBAC" in error.hint
