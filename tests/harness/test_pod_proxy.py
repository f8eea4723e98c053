"""pods/proxy on the test API server answers as kube-apiserver's does.

Kubernetes' ProxyREST (pkg/registry/core/pod/rest/subresources.go) sends the request to the pod's
IP (pkg/registry/core/pod/strategy.go ResourceLocation: "name", "name:port" or "scheme:name:port";
without a port the first port a container declares; only a global unicast pod IP) with
kube-apiserver's proxy transport, which does not verify the pod's serving certificate
(pkg/controlplane/apiserver/config.go CreateProxyTransport). A round trip that fails is a 503
"error trying to reach service" (k8s.io/apimachinery/pkg/util/proxy/transport.go).

The "pods" here are HTTP and HTTPS servers in this process on this machine's own network address
(loopback is not allowed as a pod IP). The HTTPS one has a certificate from a CA nobody trusts.
"""
from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .apiserver import ApiError, make_ca, make_cert, pod_address


class _Pod(BaseHTTPRequestHandler):
    """Answers every GET with its own scheme and the path (with query) it was asked for."""

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.seen.append((self.path, self.headers.get("X-Forwarded-Uri")))
        body = f"{self.server.scheme} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(address: str, scheme: str, context: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
    httpd = server_class((address, 0), _Pod)
    if context:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads, httpd.scheme, httpd.seen = True, scheme, []
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def pods(tmp_path_factory):
    address = pod_address()
    if address is None:
        pytest.skip("this machine has no global unicast address to stand in for a pod IP")
    d = tmp_path_factory.mktemp("pod-pki")
    ca = make_ca(d, "untrusted-ca", "/CN=nobody trusts me", 1)
    crt, key = make_cert(d, "pod", "/CN=pod", f"subjectAltName=IP:{address}\n", ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    servers = {"http": _serve(address, "http"), "https": _serve(address, "https", context)}
    yield address, servers
    for httpd in servers.values():
        httpd.shutdown()
        httpd.server_close()


def _closed_port(address: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _pod(api, ns: str, name: str, ports: list[int], ip: str | None) -> None:
    api.request("POST", f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": p} for p in ports]}]}})
    if ip:  # the kubelet reports it through pods/status
        pod = api.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
        api.request("PUT", f"/api/v1/namespaces/{ns}/pods/{name}/status", pod)


def _error(api, path: str) -> ApiError:
    with pytest.raises(ApiError) as e:
        api.request("GET", path)
    return e.value


def test_get_through_the_pod_proxy(clusters, namespaces, pods):
    address, servers = pods
    api, ns = clusters.source, namespaces()
    http_port, https_port = (servers[s].server_address[1] for s in ("http", "https"))
    _pod(api, ns, "p", [http_port, https_port], address)
    base = f"/api/v1/namespaces/{ns}/pods"

    # scheme:name:port, over TLS the API server does not verify, the sub-path and query passed on
    assert api.request("GET", f"{base}/https:p:{https_port}/proxy/metrics?x=1") == "https /metrics?x=1\n"
    # the wrapping proxy transport names the API path it came from (apimachinery util/proxy/transport.go)
    assert servers["https"].seen[-1] == ("/metrics?x=1", f"{base}/https:p:{https_port}/proxy/metrics")
    # name only: http to the first declared port; a trailing slash is kept
    assert api.request("GET", f"{base}/p/proxy/a/b/") == "http /a/b/\n"
    # name:port
    assert api.request("GET", f"{base}/p:{http_port}/proxy/") == "http /\n"


def test_pod_proxy_errors_as_kube_apiserver_answers_them(clusters, namespaces, pods):
    address, _ = pods
    api, ns = clusters.source, namespaces()
    base = f"/api/v1/namespaces/{ns}/pods"
    _pod(api, ns, "no-ip", [8443], None)
    _pod(api, ns, "loopback", [8443], "127.0.0.1")
    _pod(api, ns, "closed", [_closed_port(address)], address)

    e = _error(api, f"{base}/missing/proxy/metrics")
    assert e.status == 404 and 'pods \\"missing\\" not found' in e.body
    e = _error(api, f"{base}/https:no-ip:8443/proxy/metrics")  # not yet running: no pod IP
    assert e.status == 400 and "address not allowed" in e.body
    e = _error(api, f"{base}/https:loopback:8443/proxy/metrics")
    assert e.status == 400 and "address not allowed" in e.body
    e = _error(api, f"{base}/ftp:closed:21/proxy/")
    assert e.status == 400 and 'invalid pod request \\"ftp:closed:21\\"' in e.body
    e = _error(api, f"{base}/closed/proxy/metrics")  # nothing listens on the pod's port
    assert e.status == 503 and "error trying to reach service" in e.body
