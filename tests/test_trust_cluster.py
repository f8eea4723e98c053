"""`kubectl dlm trust` against the KubeVirt tier (tests/kubevirt): KubeVirt's own CAs, and
virt-operator's CA merge played from its code (tests/harness/kubevirt_ca.py).

The tier's baseline is two clusters that trust each other (tests/harness/kubevirt.py). The
`untrusted` fixture takes that away for a test (each kubevirt-ca holds only its own CA, each
kubevirt-external-ca is empty) and puts it back after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest

from kubectl_dlm import errors, pem
from tests.test_pem import NOW, make_cert

pytest.importorskip("tests.kubevirt.tier", reason="the KubeVirt tier (tests/kubevirt) is not in this tree")

from tests.kubevirt.tier import vm_manifest  # noqa: E402

KV_NS = "kubevirt"


def bundle(cluster, name: str = "kubevirt-ca") -> str:
    return (cluster.request("GET", f"/api/v1/namespaces/{KV_NS}/configmaps/{name}").get("data") or {}).get("ca-bundle") or ""


def version(cluster, name: str) -> str:
    return cluster.request("GET", f"/api/v1/namespaces/{KV_NS}/configmaps/{name}")["metadata"]["resourceVersion"]


def set_bundle(cluster, name: str, text: str) -> None:
    cluster.request("PATCH", f"/api/v1/namespaces/{KV_NS}/configmaps/{name}", {"data": {"ca-bundle": text}},
                    content_type="application/merge-patch+json")


def own_ca(cluster) -> pem.Certificate:
    return pem.parse_bundle(cluster.kubevirt_ca_pem)[0]


@contextlib.contextmanager
def operator_down(clusters, *names: str):
    """virt-operator does not run on these clusters (all if none named) within the block."""
    with contextlib.ExitStack() as stack:
        for name in names or [c.name for c in clusters]:
            stack.enter_context(clusters.kubevirt[name].ca_operator.paused())
        yield


def distrust(clusters) -> None:
    with operator_down(clusters):
        for install in clusters.kubevirt.values():
            install.distrust()


@pytest.fixture
def untrusted(kubevirt):
    """Neither cluster trusts the other during the test; they do again after it (the tier's baseline)."""
    clusters = kubevirt.clusters
    distrust(clusters)
    yield clusters
    distrust(clusters)
    clusters.kubevirt["source"].trust(clusters.kubevirt["target"])
    clusters.kubevirt["target"].trust(clusters.kubevirt["source"])


def trust_cmd(cli, clusters, *extra):
    return cli("trust", "--kubeconfig", clusters.kubeconfig, "--context", "source", "--to-context", "target", *extra)


def cert_line(label: str, cert: pem.Certificate) -> str:
    return (f"  {label:<21} {cert.subject}  valid {pem.format_time(cert.not_before)} .. "
            f"{pem.format_time(cert.not_after)}  sha256 {cert.short_id}")


def test_trust_from_scratch_then_again_changes_nothing(untrusted, cli):
    clusters = untrusted
    src, tgt = own_ca(clusters.source), own_ca(clusters.target)

    first = trust_cmd(cli, clusters)
    assert first.code == errors.OK, first.stderr
    lines = first.stdout.splitlines()
    assert lines[:4] == ["source -> target (kubevirt/kubevirt-external-ca):", cert_line("add", src),
                         "target -> source (kubevirt/kubevirt-external-ca):", cert_line("add", tgt)]
    assert lines[4].startswith("target: kubevirt-ca now holds source's 1 certificate(s) (after ")
    assert lines[5].startswith("source: kubevirt-ca now holds target's 1 certificate(s) (after ")
    assert lines[6] == "trusted: source and target accept each other's KubeVirt CA"
    assert [c.sha256 for c in pem.parse_bundle(bundle(clusters.target))] == [tgt.sha256, src.sha256]
    assert [c.sha256 for c in pem.parse_bundle(bundle(clusters.source))] == [src.sha256, tgt.sha256]

    versions = {c.name: version(c, "kubevirt-external-ca") for c in clusters}
    again = trust_cmd(cli, clusters)
    assert again.code == errors.OK, again.stderr
    assert again.stdout.splitlines() == [
        "source -> target (kubevirt/kubevirt-external-ca):", cert_line("trusted", src), cert_line("trusted", tgt),
        "  nothing to change: target already trusts all of source's valid CA certificates",
        "target -> source (kubevirt/kubevirt-external-ca):", cert_line("trusted", tgt), cert_line("trusted", src),
        "  nothing to change: source already trusts all of target's valid CA certificates",
        "nothing changed: source and target already trust each other's KubeVirt CA"]
    assert {c.name: version(c, "kubevirt-external-ca") for c in clusters} == versions  # nothing was written
    for c in clusters:  # no duplicates
        certs = pem.parse_bundle(bundle(c))
        assert len(certs) == len(pem.unique(certs)) == 2


def test_dry_run_shows_what_would_change_and_changes_nothing(untrusted, cli):
    clusters = untrusted
    src, tgt = own_ca(clusters.source), own_ca(clusters.target)
    result = trust_cmd(cli, clusters, "--dry-run")
    assert result.code == errors.OK, result.stderr
    assert result.stdout.splitlines() == [
        "source -> target (kubevirt/kubevirt-external-ca):", cert_line("would add", src),
        "target -> source (kubevirt/kubevirt-external-ca):", cert_line("would add", tgt),
        "dry run: would post 2 certificate(s); nothing was changed"]
    assert bundle(clusters.target, "kubevirt-external-ca") == bundle(clusters.source, "kubevirt-external-ca") == ""


def test_expired_certificate_is_skipped_and_a_stuck_operator_times_out(untrusted, cli, tmp_path):
    """virt-operator is down on both clusters: nothing merges, so the drop box shows exactly what was
    posted (a running one would also drop the expired certificate from kubevirt-ca: MergeCABundle keeps
    unexpired ones only, components/secrets.go:687-693 @v1.9.0)."""
    with operator_down(untrusted):
        stuck_operator(untrusted, cli, tmp_path)


def stuck_operator(untrusted, cli, tmp_path):
    clusters = untrusted
    expired_pem = make_cert(tmp_path, "/CN=kubevirt.io@retired", not_before=NOW - dt.timedelta(days=9),
                            not_after=NOW - dt.timedelta(days=2))
    expired = pem.parse_bundle(expired_pem)[0]
    src = own_ca(clusters.source)
    set_bundle(clusters.source, "kubevirt-ca", clusters.source.kubevirt_ca_pem + expired_pem)

    result = trust_cmd(cli, clusters, "--timeout", "2")
    assert result.code == errors.TIMED_OUT
    assert cert_line("add", src) in result.stdout.splitlines()
    assert cert_line("skip (expired)", expired) in result.stdout.splitlines()
    assert result.stderr.splitlines() == [
        f"error: target: kubevirt/kubevirt-ca does not hold 1 of source's CA certificate(s) ({src.subject} sha256 "
        f"{src.short_id}) after waiting; they still wait in kubevirt-external-ca: is virt-operator running?",
        "  hint: check with: kubectl --context target -n kubevirt get configmap kubevirt-ca kubevirt-external-ca "
        "-o yaml; then run the command again (it is safe to repeat), or raise --timeout"]
    posted = pem.parse_bundle(bundle(clusters.target, "kubevirt-external-ca"))
    assert [c.sha256 for c in posted] == [src.sha256]  # the expired one was not posted

    again = trust_cmd(cli, clusters, "--timeout", "1", "-o", "json")
    assert again.code == errors.TIMED_OUT
    posted = pem.parse_bundle(bundle(clusters.target, "kubevirt-external-ca"))
    assert [c.sha256 for c in posted] == [src.sha256]  # pending, not posted twice


def test_unparseable_drop_box_is_replaced_not_appended_to(untrusted, cli):
    clusters = untrusted
    src = own_ca(clusters.source)
    # A drop box virt-operator would discard whole (getRemotePublicCas, core.go:366-370 @v1.9.0), seen
    # by `trust` before the operator's next reconcile: here it is down on the target meanwhile.
    with operator_down(clusters, "target"):
        set_bundle(clusters.target, "kubevirt-external-ca", "-----BEGIN CERTIFICATE-----\nnot base64!\n"
                                                            "-----END CERTIFICATE-----\n")
        result = trust_cmd(cli, clusters, "--timeout", "1", "-o", "json")
        assert result.code == errors.TIMED_OUT, result.stdout + result.stderr
        posted = bundle(clusters.target, "kubevirt-external-ca")
        assert [c.sha256 for c in pem.parse_bundle(posted)] == [src.sha256] and "not base64!" not in posted
    # once virt-operator runs again, it merges what `trust` posted and empties the drop box
    again = trust_cmd(cli, clusters, "-o", "json")
    assert again.code == errors.OK, again.stderr
    assert json.loads(again.stdout)["dryRun"] is False
    assert [c.sha256 for c in pem.parse_bundle(bundle(clusters.target))] == [own_ca(clusters.target).sha256, src.sha256]
    assert bundle(clusters.target, "kubevirt-external-ca") == ""


def test_without_trust_migrate_stops_in_check_and_after_trust_it_succeeds(untrusted, kubevirt, cli):
    clusters = untrusted
    ns = kubevirt.namespaces("source", "target")
    kubevirt.run_vm("source", ns, vm_manifest("vm1", data_volume=True))
    migrate = ("migrate", "vm1", "--kubeconfig", clusters.kubeconfig, "--context", "source", "-n", ns,
               "--to-context", "target", "--sync-timeout", "60", "--timeout", "120", "-o", "plain")

    refused = cli(*migrate)
    assert refused.code == errors.REFUSED, refused.stdout + refused.stderr
    assert "ca-trust: target's kubevirt-ca lacks 1 of source's 1 CA certificate(s)" \
        in refused.stdout + refused.stderr
    assert "kubectl dlm trust --context source --to-context target" in refused.stdout + refused.stderr
    # Stopped before anything was created: not halfway.
    assert kubevirt.get("target", "vm", ns, "vm1") is None
    assert kubevirt.get("target", "dv", ns, "vm1-disk") is None
    assert clusters.target.request("GET", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations")["items"] == []
    assert clusters.source.request("GET", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations")["items"] == []

    assert trust_cmd(cli, clusters).code == errors.OK
    checked = cli("check", "vm1", "--kubeconfig", clusters.kubeconfig, "--context", "source", "-n", ns,
                  "--to-context", "target")
    assert checked.code == errors.OK, checked.stdout

    done = cli(*migrate)
    assert done.code == errors.OK, done.stdout + done.stderr
    target_vmi = kubevirt.wait_for("target", "vmi", ns, "vm1",
                                   lambda o: o is not None and (o.get("status") or {}).get("phase") == "Running")
    assert target_vmi["status"]["phase"] == "Running"
    assert kubevirt.get("target", "vm", ns, "vm1")["spec"]["runStrategy"] == "Always"
