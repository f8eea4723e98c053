"""What a synchronization address may look like, for --connect-url and for `check` alike. Pure.

KubeVirt hands spec.sendTo.connectURL to gRPC as it is: grpc.NewClient(connectionURL, ...)
(pkg/synchronization-controller/synchronization-controller.go:902-906 @v1.9.0). gRPC's default
resolver is dns, so `host:port`, `[v6]:port` and `dns:///host:port` all dial the same peer; any
other scheme (https://, unix:) does not reach a sync controller.
"""

from __future__ import annotations

from typing import Tuple

DNS_PREFIX = "dns:///"
EXAMPLES = "10.0.0.5:9185, [fd00::1]:9185 or dns:///sync.east.example.com:9185"


class AddressError(ValueError):
    """The text is not an address gRPC would dial; str() says why, naming the address."""


def split(address: str) -> Tuple[str, int]:
    """(host, port) of a sync address; the host without brackets. Raises AddressError."""
    text = address.strip()
    if text.startswith(DNS_PREFIX):
        text = text[len(DNS_PREFIX):]
    elif "://" in text or text.startswith("unix:"):
        raise AddressError(f"{address} has a URL scheme; the sync controller dials a gRPC host:port (or dns:///host:port)")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AddressError(f"{address} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise AddressError(f"{address} is an IPv6 address without brackets; write [{host}]:{port}")
    if not host:
        raise AddressError(f"{address} is not host:port")
    return host, int(port)
