"""`migrate --dry-run=server` against a synchronous admission webhook that judges VMIMs as KubeVirt does.

KubeVirt's migration-create validator GETs the VMI a VMIM names and denies with HTTP 400
`the VMI "<ns>/<name>" does not exist` when it is missing
(pkg/virt-api/webhooks/validating-webhook/admitters/migration-create-admitter.go:124-128 @v1.9.0;
ToAdmissionResponseError, pkg/util/webhooks/webhooks.go:43-51). Its configuration has
sideEffects None (pkg/virt-operator/resource/generate/components/webhooks.go), so the API server
calls it on dry runs too. The webhook below does exactly that check (and only it) through the
test API server's real synchronous admission (tests/harness/test_admission.py shows the plumbing),
so the plugin meets the same 400 a real cluster returns for a target VMIM whose receiving VMI does
not exist yet.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.harness.apiserver import ApiError, make_ca, make_cert

SERVICE = "virt-api-test"
VMIMS = "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations"


class _MigrationCreateValidator(BaseHTTPRequestHandler):
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        self.server.seen.append(req)
        vmim = req.get("object") or {}
        ns, vmi = req.get("namespace"), (vmim.get("spec") or {}).get("vmiName")
        response = {"uid": req["uid"], "allowed": True}
        try:
            self.server.cluster.request("GET", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{vmi}")
        except ApiError as e:
            if e.status != 404:
                raise
            response = {"uid": req["uid"], "allowed": False,
                        "status": {"code": 400, "message": f'the VMI "{ns}/{vmi}" does not exist'}}
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def migration_validator(clusters, tmp_path):
    """Register the validator on the source cluster for the namespaces a test names; yields (register, seen)."""
    c = clusters.source
    made = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MigrationCreateValidator)
    server.seen, server.cluster, server.started = [], c, False

    def register(home: str, namespaces: list) -> None:
        ca = make_ca(tmp_path, "hook-ca", "/CN=hook-ca", days=1)
        crt, key = make_cert(tmp_path, "hook", f"/CN={SERVICE}",  # CN <= 64 characters; the SAN names the Service
                             f"subjectAltName=DNS:{SERVICE}.{home}.svc\nextendedKeyUsage=serverAuth\n", ca, days=1)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(crt), str(key))
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        server.started = True
        c.request("POST", f"/api/v1/namespaces/{home}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}})
        c.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{home}/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{SERVICE}-1", "labels": {"kubernetes.io/service-name": SERVICE}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
        name = f"migration-create-validator-{home}"
        c.request("POST", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{"name": "migration-create-validator.kubevirt.io", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "timeoutSeconds": 10,
                          "rules": [{"operations": ["CREATE"], "apiGroups": ["kubevirt.io"], "apiVersions": ["v1"],
                                     "resources": ["virtualmachineinstancemigrations"]}],
                          "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                                                      "operator": "In", "values": namespaces}]},
                          "clientConfig": {"service": {"namespace": home, "name": SERVICE, "port": 443},
                                           "caBundle": base64.b64encode(ca[0].read_bytes()).decode()}}]})
        made.append(name)

    try:
        yield register, server.seen
    finally:
        for name in made:
            try:
                c.request("DELETE", f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}")
            except ApiError:
                pass
        if server.started:  # shutdown() waits for serve_forever, forever if it never ran
            server.shutdown()


def receive_vmim(ns: str) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": "probe-receive"}, "spec": {"vmiName": "vm1", "receive": {"migrationID": "probe"}}}


def wait_denies(cluster, ns: str, timeout: float = 30) -> str:
    """The plugins see a new configuration a moment later: probe with a dry run until it is judged."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.request("POST", VMIMS.format(ns=ns) + "?dryRun=All", receive_vmim(ns))
        except ApiError as e:
            return f"{e.status} {json.loads(e.body)['message']}"
        if time.monotonic() > deadline:
            raise RuntimeError("the validator was not called")
        time.sleep(0.2)


def test_dry_run_reports_the_target_migration_as_validated_at_run_time(clusters, namespaces, kubevirt_sim, dlm,
                                                                       migration_validator):
    register, seen = migration_validator
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    register(src, [src, dst])
    # what a real cluster answers for a target VMIM before its receiving VMI exists
    assert wait_denies(clusters.source, dst) == ('400 admission webhook "migration-create-validator.kubevirt.io" '
                                                 f'denied the request: the VMI "{dst}/vm1" does not exist')
    seen.clear()
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--dry-run=server", "-o", "plain")
    assert code == errors.OK, out + err
    assert f"validated at run time: needs the receiving VMI: VirtualMachineInstanceMigration {dst}/vm1-receive-" in out
    assert f"checked VirtualMachineInstanceMigration {src}/vm1-send-" in out
    assert "vm1: dry run" in out
    # the send VMIM was judged by the webhook, as a dry run, and allowed (its VMI exists); nothing stored
    assert [(r["namespace"], r["dryRun"]) for r in seen] == [(src, True)]
    assert not kubevirt_sim.clusters["source"].stores["vmim"].list(src)
    assert kubevirt_sim.get("source", "vm", dst, "vm1") is None
