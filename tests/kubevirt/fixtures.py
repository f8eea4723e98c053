"""pytest plugin of the KubeVirt tier (loaded by tests/conftest.py, so tests/e2e has it too): the
played node side, CDI and virt-handler for the session, a namespace per test, and `kubevirt`, the
tier behind one object (tier.py). What runs real: README.md here."""
from __future__ import annotations

import secrets

import pytest

from tests.harness import kubevirt as harness
from tests.kubevirt import cdi, handler, nodes
from tests.kubevirt.tier import Tier


def pytest_collection_modifyitems(items):
    for item in items:
        if "kubevirt_clusters" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kubevirt)
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # A failing test shows what KubeVirt's components logged (the tail of each log).
    report = yield
    if report.failed:
        for running in harness._running:
            for name, log in running.logs():
                report.sections.append((f"{name} log (tail)", harness.tail(log, 3000)))
            for name, install in running.kubevirt.items():
                if install.ca_operator.errors:
                    report.sections.append((f"{name} played virt-operator (CA): errors",
                                            "\n".join(install.ca_operator.errors)))
        for side in [*nodes._sides.values(), *cdi._cdis.values()]:
            if side.errors:
                report.sections.append((f"{side.cluster.name} played {type(side).__name__}: errors",
                                        "\n".join(side.errors)))
        for h in handler.running:
            report.sections.append((f"{h.cluster.name}/virt-handler (played)", h.describe()))
    return report


@pytest.fixture(scope="session")
def node_sides(kubevirt_clusters):
    """The played kube-scheduler and kubelets of both clusters (tests/kubevirt/nodes.py), with
    nodes.DEFAULT_NODES, running for the whole session: {cluster name: NodeSide}."""
    sides = {c.name: nodes.node_side(c) for c in kubevirt_clusters}
    yield sides
    nodes.stop_all()


@pytest.fixture(scope="session")
def cdis(kubevirt_clusters):
    """Played CDI and PV binding of both clusters (tests/kubevirt/cdi.py): {cluster name: CDI}."""
    running = {c.name: cdi.cdi(c) for c in kubevirt_clusters}
    yield running
    cdi.stop_all()


@pytest.fixture(scope="session")
def handlers(kubevirt_clusters, node_sides):
    """The played virt-handlers of both clusters (tests/kubevirt/handler.py), running for the whole
    session: {cluster name: Handler}. `handler.NETWORK` is their data plane (transfer time, faults)."""
    yield {c.name: handler.handler_for(kubevirt_clusters.kubevirt[c.name]) for c in kubevirt_clusters}
    handler.stop_all()


@pytest.fixture
def kv_namespace(kubevirt_clusters, node_sides, cdis, handlers, request):
    """A fresh namespace with the same name on both KubeVirt clusters, deleted after the test."""
    stem = harness.slug(request.node.name)
    name = f"t-{stem}-{secrets.token_hex(3)}"
    for c in kubevirt_clusters:
        c.create_namespace(name)
    yield name
    for c in kubevirt_clusters:
        c.delete_namespace(name)


@pytest.fixture
def kubevirt(kubevirt_clusters, node_sides, cdis, handlers, request):
    """The KubeVirt tier for one test (tier.Tier): namespaces, VMs, reads, waits and fault knobs;
    at teardown every knob is put back and the test's namespaces are deleted."""
    tier = Tier(kubevirt_clusters, node_sides, cdis, handlers, stem=harness.slug(request.node.name))
    yield tier
    tier.close()
