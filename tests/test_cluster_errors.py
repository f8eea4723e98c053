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


# --- credentials (issue 13.7) -------------------------------------------------------------------

@pytest.fixture
def listener():
    """A TCP port that records every connection: proof that no request was sent."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted = []
    done = threading.Event()

    def accept():
        while not done.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    done.set()
    thread.join(2)
    server.close()


def exec_kubeconfig(tmp_path, port, command):
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
current-context: corp
clusters: [{{name: corp, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users:
- name: sso
  user:
    exec: {{apiVersion: client.authentication.k8s.io/v1, command: "{command}", interactiveMode: Never}}
contexts: [{{name: corp, context: {{cluster: corp, user: sso, namespace: prod}}}}]
""")
    return path


@pytest.mark.parametrize("script,says", [
    ("#!/bin/sh\necho 'session expired: run corp-login' >&2\nexit 1\n", "failed: exit status 1: session expired: run corp-login"),
    ("#!/bin/sh\nexit 7\n", "failed: exit status 7"),
    ("#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{}}'\n",
     "missing token or clientCertificateData"),
])
@pytest.mark.parametrize("command", ["render", "status", "cancel", "check"])
def test_a_failing_exec_credential_plugin_is_one_error_naming_it_and_nothing_is_sent(
        tmp_path, listener, capfd, script, says, command):
    port, accepted = listener
    plugin = tmp_path / "corp-login-plugin"
    plugin.write_text(script)
    plugin.chmod(0o755)
    code = cli.run([command, "vm1", "--kubeconfig", str(exec_kubeconfig(tmp_path, port, plugin))])
    out = capfd.readouterr()
    assert code == errors.CLUSTER
    lines = out.err.splitlines()
    assert lines[0] == (f"error: the credential plugin {plugin} of user sso (context corp) {says}; no request was sent"
                        if "status" in says else lines[0])
    assert str(plugin) in lines[0] and says in lines[0] and lines[1].startswith("  hint: ")
    assert len(lines) == 2 and "ERROR:root" not in out.err and "Traceback" not in out.err
    assert "cannot reach" not in out.err and accepted == []  # no request without credentials, no blame on the server


def test_a_missing_exec_plugin_is_named(tmp_path, listener, capfd):
    port, accepted = listener
    code = cli.run(["render", "vm1", "--kubeconfig", str(exec_kubeconfig(tmp_path, port, "/nonexistent/corp-login"))])
    err = capfd.readouterr().err
    assert code == errors.CLUSTER and "the credential plugin /nonexistent/corp-login" in err
    assert "No such file or directory" in err and accepted == []


def test_a_missing_client_certificate_file_is_named(tmp_path, listener, capfd):
    port, accepted = listener
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
current-context: corp
clusters: [{{name: corp, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: me, user: {{client-certificate: {tmp_path}/gone.crt, client-key: {tmp_path}/gone.key}}}}]
contexts: [{{name: corp, context: {{cluster: corp, user: me}}}}]
""")
    code = cli.run(["render", "vm1", "--kubeconfig", str(path)])
    err = capfd.readouterr().err
    assert code == errors.USAGE
    assert err.startswith(f"error: cannot load the credentials of context corp from {path}: File does not exist: ")
    assert "gone." in err and "users[].user" in err and accepted == []


def test_a_token_the_server_does_not_accept_is_not_called_unreachable(clusters, tmp_path, capfd):
    """A static token that expired, against the real test API server."""
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load(clusters.kubeconfig.read_text())
    doc["users"] = [{"name": u["name"], "user": {"token": "expired-token"}} for u in doc["users"]]
    path = tmp_path / "kubeconfig"
    with open(path, "w") as f:
        YAML().dump(doc, f)
    code = cli.run(["render", "vm1", "--context", "source", "-n", "default", "--kubeconfig", str(path)])
    err = capfd.readouterr().err
    assert code == errors.CLUSTER
    assert "cannot reach" not in err and "expired-token" not in err
    assert ("did not accept the credentials of context source" in err) or ("refused to list" in err), err
