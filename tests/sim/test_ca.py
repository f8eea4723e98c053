"""virt-operator's CA merge (dlm-state-machine.md §5) and the trust it gives the sync connection (§2.7)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from . import ca
from .kube import CONFIGMAP
from .scenario import Migration, condition, trust_each_other

X509 = ('rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake '
        'failed: could not verify peer certificate: x509: certificate signed by unknown authority"')


def make_cert(d: Path, name: str, start: str | None = None, end: str | None = None) -> str:
    """A self-signed CA certificate; with start/end (YYYYMMDDhhmmssZ) via `openssl ca` for odd validity."""
    key, out = d / f"{name}.key", d / f"{name}.pem"
    if start is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", out, "-days", "2", "-subj", f"/CN={name}"],
                       check=True, capture_output=True)
        return out.read_text()
    db = d / f"{name}-ca"
    (db / "new").mkdir(parents=True)
    (db / "index.txt").write_text("")
    (db / "serial").write_text("01\n")
    cnf = d / f"{name}.cnf"
    cnf.write_text(f"[ca]\ndefault_ca=d\n[d]\ndir={db}\ndatabase=$dir/index.txt\nnew_certs_dir=$dir/new\n"
                   "serial=$dir/serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n")
    csr = d / f"{name}.csr"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "ca", "-batch", "-config", cnf, "-selfsign", "-keyfile", key, "-in", csr, "-out", out,
                    "-startdate", start, "-enddate", end], check=True, capture_output=True)
    return out.read_text()


def bundle(sim, cluster: str) -> str:
    return sim.get(cluster, "configmap", "kubevirt", "kubevirt-ca")["data"]["ca-bundle"]


def drop_box(sim, cluster: str) -> str:
    return sim.get(cluster, "configmap", "kubevirt", "kubevirt-external-ca")["data"]["ca-bundle"]


def post(sim, cluster: str, text: str) -> None:
    sim.clusters[cluster].kube.patch(CONFIGMAP, "kubevirt", "kubevirt-external-ca", {"data": {"ca-bundle": text}},
                                     "test")
    assert sim._wait(lambda: drop_box(sim, cluster) == "", 10), "drop box not reset"


def fingerprints(text: str) -> list[str]:
    return [c.sha256 for c in ca.parse_bundle(text)]


def test_merge_filters_dedups_and_resets_the_drop_box(kubevirt_sim, namespaces, tmp_path):
    sim = kubevirt_sim
    own = sim.clusters["target"].own_ca.sha256
    good, other = make_cert(tmp_path, "good"), make_cert(tmp_path, "other")
    expired = make_cert(tmp_path, "expired", "20200101000000Z", "20200102000000Z")
    future = make_cert(tmp_path, "future", "20990101000000Z", "20990102000000Z")
    before = fingerprints(bundle(sim, "target"))
    assert before[0] == own  # the own CA comes first

    post(sim, "target", good + expired + future + good)
    after = fingerprints(bundle(sim, "target"))
    assert fingerprints(good)[0] in after and after.count(fingerprints(good)[0]) == 1  # SHA-256 de-dup
    assert fingerprints(expired)[0] not in after and fingerprints(future)[0] not in after  # validity window
    assert after[0] == own

    post(sim, "target", "invalid")  # a parse error discards the whole drop box
    post(sim, "target", other + "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    assert fingerprints(other)[0] not in fingerprints(bundle(sim, "target"))
    post(sim, "target", good)  # again: nothing new
    post(sim, "target", other)
    final = fingerprints(bundle(sim, "target"))
    assert fingerprints(good)[0] in final and fingerprints(other)[0] in final  # earlier merges remain

    sim.faults.expire_ca_overlap("target")  # own CA older than its overlap: only it survives (§5)
    assert sim._wait(lambda: fingerprints(bundle(sim, "target")) == [own], 10)


def test_untrusted_peer_stalls_with_x509_then_proceeds_once_trusted(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    sim.faults.transfer_seconds = 0.3
    for c in ("source", "target"):  # forget earlier tests' trust: prune to the own CA
        sim.faults.expire_ca_overlap(c)
        assert sim._wait(lambda c=c: fingerprints(bundle(sim, c)) == [sim.clusters[c].own_ca.sha256], 10)
        sim.faults.ca_overlap_elapsed[c] = False
    sim.expect_violations("source: synchronization connection to 192.0.2.20:9185 failed TLS verification")
    ns = namespaces("source", "target")
    m = Migration(sim, ns)
    m.prepare()
    m.create_target_vmim()
    m.create_source_vmim()
    src = m.wait_vmim("source", lambda o: condition(o, "decentralizedMigrationBlocked") is not None)
    assert condition(src, "decentralizedMigrationBlocked")["message"] == X509
    assert condition(m.wait_vmim("target", lambda o: o is not None), "decentralizedMigrationBlocked")["message"] == \
        "waiting for incoming synchronization, unable to proceed"
    trust_each_other(sim)  # what `kubectl dlm trust` does; the source's retries then get through
    m.wait_phase("target", "Succeeded")
