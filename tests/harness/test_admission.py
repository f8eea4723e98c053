"""The test API server calls admission webhooks synchronously, as kube-apiserver does.

A small HTTPS webhook server runs in this process (http.server + ssl, its certificate from a CA made
by the harness). Mutating/ValidatingWebhookConfiguration objects name it by a Service; the API
server resolves the Service through its EndpointSlice to this loopback port (kube-apiserver with
--enable-aggregator-routing) and verifies the certificate against the configuration's caBundle.
"""
from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .apiserver import ApiError, make_ca, make_cert
from .clusters import kubectl_path, publish_endpoint_slice

SERVICE = "hooks"
DENY_LABEL = "example.com/deny"  # objects carrying it are denied, with its value in the message
MUTATED_LABEL = "example.com/mutated-by"


class _Hooks(BaseHTTPRequestHandler):
    """/validate denies objects labelled DENY_LABEL with code 422 (as KubeVirt's validators answer);
    /mutate adds MUTATED_LABEL with a JSONPatch. Every AdmissionReview request is recorded."""

    seen: list[dict]

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        self.server.seen.append(req)
        obj = req.get("object") or {}
        labels = obj.get("metadata", {}).get("labels") or {}
        response = {"uid": req["uid"], "allowed": True}
        path = self.path.split("?")[0]  # the API server adds ?timeout=10s
        if path == "/validate" and DENY_LABEL in labels:
            response = {"uid": req["uid"], "allowed": False,
                        "status": {"code": 422, "message": f"test webhook says no: {labels[DENY_LABEL]}"}}
        elif path == "/mutate":
            patch = ([{"op": "add", "path": "/metadata/labels/" + MUTATED_LABEL.replace("/", "~1"), "value": "test-webhook"}]
                     if labels else [{"op": "add", "path": "/metadata/labels", "value": {MUTATED_LABEL: "test-webhook"}}])
            response.update(patchType="JSONPatch", patch=base64.b64encode(json.dumps(patch).encode()).decode())
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


class Webhook:
    def __init__(self, cluster, ns: str, server: ThreadingHTTPServer):
        self.cluster, self.ns, self.server = cluster, ns, server

    @property
    def seen(self) -> list[dict]:
        return self.server.seen

    def wait_active(self, timeout: float = 30) -> None:
        """The plugins see a new configuration through their informer, a moment later (as on a
        real cluster): probe with dry-run creates until both webhooks answer."""
        deadline = time.monotonic() + timeout
        cms = f"/api/v1/namespaces/{self.ns}/configmaps?dryRun=All"
        while True:
            try:
                self.cluster.request("POST", cms, configmap("probe", {DENY_LABEL: "probe"}))
            except ApiError as e:
                if e.status != 422:
                    raise
                labels = self.cluster.request("POST", cms, configmap("probe"))["metadata"].get("labels") or {}
                if MUTATED_LABEL in labels:
                    self.seen.clear()
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("webhooks not called after %ss" % timeout)
            time.sleep(0.1)


def configmap(name: str, labels: dict | None = None) -> dict:
    meta = {"name": name, **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


@pytest.fixture
def webhook(clusters, namespaces, tmp_path):
    """Both webhooks registered on the source cluster for one fresh namespace; removed afterwards."""
    c = clusters.source
    ns = namespaces()
    ca = make_ca(tmp_path, "webhook-ca", "/CN=test-webhook-ca", days=1)
    crt, key = make_cert(tmp_path, "webhook", f"/CN={SERVICE}.{ns}.svc",
                         f"subjectAltName=DNS:{SERVICE}.{ns}.svc\nextendedKeyUsage=serverAuth\n", ca, days=1)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    server.seen = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(crt), str(key))
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    # The Service (unnamed port, as virt-operator's virt-api Service) and its endpoint.
    c.request("POST", f"/api/v1/namespaces/{ns}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE},
        "spec": {"ports": [{"port": 443, "targetPort": port}]}})
    publish_endpoint_slice(c, ns, SERVICE, port)

    def hook(name: str, path: str, rules: list[dict]) -> dict:
        return {"name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "timeoutSeconds": 10, "rules": rules,
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "clientConfig": {"service": {"namespace": ns, "name": SERVICE, "path": path, "port": 443},
                                 "caBundle": base64.b64encode(ca[0].read_bytes()).decode()}}

    ops = ["CREATE", "UPDATE"]
    configs = [
        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", hook("deny.example.com", "/validate", [
            {"operations": ops, "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]},
            {"operations": ops, "apiGroups": ["kubevirt.io"], "apiVersions": ["v1"],
             "resources": ["virtualmachineinstancemigrations"]}])),
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", hook("mutate.example.com", "/mutate", [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}])),
    ]
    base = "/apis/admissionregistration.k8s.io/v1"
    try:
        for resource, kind, h in configs:
            c.request("POST", f"{base}/{resource}", {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                                                     "metadata": {"name": f"test-{ns}"}, "webhooks": [h]})
        hooks = Webhook(c, ns, server)
        hooks.wait_active()
        yield hooks
    finally:
        for resource, _, _ in configs:
            try:
                c.request("DELETE", f"{base}/{resource}/test-{ns}")
            except ApiError:
                pass
        server.shutdown()


def test_denied_create_is_not_stored(webhook):
    c, ns = webhook.cluster, webhook.ns
    with pytest.raises(ApiError) as e:
        c.request("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("a", {DENY_LABEL: "no-a"}))
    assert e.value.status == 422
    assert json.loads(e.value.body)["message"] == 'admission webhook "deny.example.com" denied the request: test webhook says no: no-a'
    with pytest.raises(ApiError) as e:
        c.request("GET", f"/api/v1/namespaces/{ns}/configmaps/a")
    assert e.value.status == 404
    assert [(r["operation"], r["dryRun"], r["name"]) for r in webhook.seen] == [("CREATE", False, "a")] * 2  # mutate, validate


def test_server_dry_run_is_judged(webhook, clusters, tmp_path):
    """A sideEffects: None webhook is called on dry-run (with dryRun: true) and can deny it."""
    c, ns = webhook.cluster, webhook.ns
    f = tmp_path / "cm.json"
    f.write_text(json.dumps({**configmap("b", {DENY_LABEL: "dry-b"}), "metadata": {
        "name": "b", "namespace": ns, "labels": {DENY_LABEL: "dry-b"}}}))
    out = subprocess.run([kubectl_path(), "--kubeconfig", str(clusters.kubeconfig), "--context", "source", "apply",
                          "--server-side", "--dry-run=server", "-f", str(f)], capture_output=True, text=True,
                         env={**os.environ, "KUBECACHEDIR": str(tmp_path / "kube-cache")})
    assert out.returncode != 0
    assert 'admission webhook "deny.example.com" denied the request: test webhook says no: dry-b' in out.stderr
    assert {r["dryRun"] for r in webhook.seen} == {True}
    # an allowed dry-run is mutated and judged, and stores nothing
    got = c.request("POST", f"/api/v1/namespaces/{ns}/configmaps?dryRun=All", configmap("b"))
    assert got["metadata"]["labels"] == {MUTATED_LABEL: "test-webhook"}
    assert c.request("GET", f"/api/v1/namespaces/{ns}/configmaps")["items"] == []


def test_mutation_is_stored(webhook):
    c, ns = webhook.cluster, webhook.ns
    c.request("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("m", {"keep": "me"}))
    got = c.request("GET", f"/api/v1/namespaces/{ns}/configmaps/m")
    assert got["metadata"]["labels"] == {"keep": "me", MUTATED_LABEL: "test-webhook"}
    # the webhook saw the object as sent, the validator after the mutation
    mutate, validate = webhook.seen
    assert MUTATED_LABEL not in mutate["object"]["metadata"]["labels"]
    assert validate["object"]["metadata"]["labels"][MUTATED_LABEL] == "test-webhook"
    # an update is judged too
    with pytest.raises(ApiError) as e:
        c.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/m", {"metadata": {"labels": {DENY_LABEL: "upd"}}},
                  content_type="application/merge-patch+json")
    assert e.value.status == 422 and "test webhook says no: upd" in str(e.value)
    assert DENY_LABEL not in c.request("GET", f"/api/v1/namespaces/{ns}/configmaps/m")["metadata"]["labels"]


def test_custom_resource_goes_through_webhook(webhook):
    """KubeVirt's kinds are CRDs: the CRD server calls the same webhooks."""
    c, ns = webhook.cluster, webhook.ns
    path = f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations"

    def vmim(name: str, labels: dict) -> dict:
        return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": name, "labels": labels}, "spec": {"vmiName": "vm"}}

    with pytest.raises(ApiError) as e:
        c.request("POST", path, vmim("denied", {DENY_LABEL: "crd"}))
    assert e.value.status == 422 and "test webhook says no: crd" in str(e.value)
    assert c.request("GET", path)["items"] == []
    c.request("POST", path, vmim("allowed", {}))
    assert [i["metadata"]["name"] for i in c.request("GET", path)["items"]] == ["allowed"]
    assert [(r["kind"]["kind"], r["name"]) for r in webhook.seen] == [
        ("VirtualMachineInstanceMigration", "denied"), ("VirtualMachineInstanceMigration", "allowed")]


def test_no_webhooks_outside_their_selector(webhook, namespaces):
    """The configurations select one namespace: elsewhere nothing is called or denied."""
    c = webhook.cluster
    other = namespaces()
    c.request("POST", f"/api/v1/namespaces/{other}/configmaps", configmap("x", {DENY_LABEL: "ignored"}))
    assert c.request("GET", f"/api/v1/namespaces/{other}/configmaps/x")["metadata"]["labels"] == {DENY_LABEL: "ignored"}
    assert webhook.seen == []
