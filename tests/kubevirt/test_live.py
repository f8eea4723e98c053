"""KubeVirt's own components are live on both test clusters: the oracle is their code, not ours.

Each test names the KubeVirt v1.9.0 code whose behaviour it observes.
"""
from __future__ import annotations

import base64
import socket
import ssl
import tempfile
from pathlib import Path

import pytest

from tests.harness.apiserver import ApiError, pod_address
from tests.harness.kubevirt import NS, join_host_port
from tests.kubevirt.played import wait_for

VMS = "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances"
VMIMS = "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations"


def vm_manifest(name: str, run_strategy: str) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"runStrategy": run_strategy, "template": {
                "metadata": {"labels": {"kubevirt.io/vm": name}},
                "spec": {"domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]},
                                    "resources": {"requests": {"memory": "128Mi"}}},
                         "volumes": [{"name": "root", "containerDisk": {"image": "example.invalid/cirros:1"}}]}}}}


def message(e: ApiError) -> str:
    """The Status message of an API error (its text carries the JSON body, quotes escaped)."""
    return str(e).replace('\\"', '"')


def get_or_none(cluster, path: str):
    try:
        return cluster.request("GET", path)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


def test_virt_api_webhook_denies_an_invalid_vm_and_it_is_not_stored(kubevirt_clusters, kv_namespace):
    # pkg/virt-api/webhooks/validating-webhook/admitters/vms-admitter.go:270 validateRunStrategy
    c = kubevirt_clusters.source
    with pytest.raises(ApiError) as denied:
        c.request("POST", VMS.format(ns=kv_namespace), vm_manifest("bad", "Sometimes"))
    assert 'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: Invalid RunStrategy (Sometimes)' \
        in message(denied.value)
    assert get_or_none(c, VMS.format(ns=kv_namespace) + "/bad") is None


def test_virt_api_reads_the_kubevirt_cr_dlm_gate_allows_wait_as_receiver(kubevirt_clusters, kv_namespace):
    # vms-admitter.go:249-253: WaitAsReceiver only with the DecentralizedLiveMigration gate, which
    # virt-api reads from the KubeVirt CR the harness created.
    c = kubevirt_clusters.target
    c.request("POST", VMS.format(ns=kv_namespace), vm_manifest("receiver", "WaitAsReceiver"))
    assert c.request("GET", VMS.format(ns=kv_namespace) + "/receiver")["spec"]["runStrategy"] == "WaitAsReceiver"


def test_migration_for_a_missing_vmi_is_denied_also_on_server_dry_run(kubevirt_clusters, kv_namespace):
    # pkg/virt-api/webhooks/validating-webhook/admitters/migration-create-admitter.go:124-127; the
    # webhook declares sideEffects None (pkg/virt-operator/resource/generate/components/webhooks.go),
    # so the API server calls it for a dry-run too: finding 1 of issue 9.
    c = kubevirt_clusters.source
    vmim = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": "m1"}, "spec": {"vmiName": "nope"}}
    for query in ("", "?dryRun=All"):
        with pytest.raises(ApiError) as denied:
            c.request("POST", VMIMS.format(ns=kv_namespace) + query, vmim)
        assert f'denied the request: the VMI "{kv_namespace}/nope" does not exist' in message(denied.value)
    assert get_or_none(c, VMIMS.format(ns=kv_namespace) + "/m1") is None


def test_virt_controller_leads_and_starts_a_vm(kubevirt_clusters, kv_namespace):
    # virt-controller takes its Lease (pkg/virt-controller/watch/application.go setupLeaderElector),
    # its VM controller creates the VMI for runStrategy Always (watch/vm/vm.go), the VMI passes
    # virt-api's VMI webhooks, and the VMI controller creates the virt-launcher Pod (watch/vmi/vmi.go).
    for c in kubevirt_clusters:
        install = kubevirt_clusters.kubevirt[c.name]
        assert install.lease_holder("virt-controller") == install.components["virt-controller"].pod_name
    c = kubevirt_clusters.source
    vm = c.request("POST", VMS.format(ns=kv_namespace), vm_manifest("vm1", "Always"))
    vmi = wait_for("the VMI", lambda: get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1"))
    assert [o["uid"] for o in vmi["metadata"]["ownerReferences"]] == [vm["metadata"]["uid"]]
    # Defaults from virt-api's mutating webhook (pkg/virt-api/webhooks/mutating-webhook/mutators/vmi-mutator.go)
    assert vmi["spec"]["domain"]["machine"]["type"]
    pods = wait_for("the virt-launcher Pod", lambda: c.request(
        "GET", f"/api/v1/namespaces/{kv_namespace}/pods?labelSelector=kubevirt.io/created-by={vmi['metadata']['uid']}"
    )["items"])
    assert pods[0]["metadata"]["labels"]["kubevirt.io"] == "virt-launcher"
    assert pods[0]["metadata"]["name"].startswith("virt-launcher-vm1-")


def test_synchronization_controllers_serve_mutual_tls_at_the_kubevirt_cr_addresses(kubevirt_clusters):
    # cmd/synchronization-controller: gRPC with credentials.NewTLS (pkg/synchronization-controller
    # synchronization-controller.go:161); server TLS asks for a client certificate signed by a CA in
    # kubevirt-ca (pkg/util/tls/tls.go SetupTLSForServer), which holds the peer cluster's CA too.
    for c in kubevirt_clusters:
        peer = kubevirt_clusters.target if c is kubevirt_clusters.source else kubevirt_clusters.source
        kv = c.request("GET", f"/apis/kubevirt.io/v1/namespaces/{NS}/kubevirts/kubevirt")
        addresses = kv["status"]["synchronizationAddresses"]
        install = kubevirt_clusters.kubevirt[c.name]
        sync = install.components["virt-synchronization-controller"]
        assert addresses == [join_host_port(sync.ip, install.sync_port)] and sync.ip == pod_address()
        host, port = addresses[0].rsplit(":", 1)
        host = host.strip("[]")
        peer_secret = next(s for s in kubevirt_clusters.kubevirt[peer.name].manifests["secrets"]
                           if s["metadata"]["name"] == "kubevirt-synchronization-controller-certs")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=install.ca_pem())
        ctx.set_alpn_protocols(["h2"])
        with tempfile.TemporaryDirectory() as d:
            crt, key = Path(d) / "tls.crt", Path(d) / "tls.key"
            crt.write_bytes(base64.b64decode(peer_secret["data"]["tls.crt"]))
            key.write_bytes(base64.b64decode(peer_secret["data"]["tls.key"]))
            ctx.load_cert_chain(str(crt), str(key))
        with socket.create_connection((host, int(port)), timeout=10) as s, \
                ctx.wrap_socket(s) as tls:
            assert tls.selected_alpn_protocol() == "h2"
            subject = dict(x[0] for x in tls.getpeercert()["subject"])
            assert subject["commonName"] == "kubevirt.io:system:node:virt-synchronization-controller"
