"""Live reads page like kubectl (limit/continue), against the real test API server.

The page size is forced down to 2 so a handful of objects needs several pages; the server
(tests/harness: the real apiserver storage on etcd) hands out the continue tokens.
"""

from __future__ import annotations

import math

import pytest

from kubectl_dlm import kube

PAGE = 2


def vm(name: str, labels: dict) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name, "labels": labels},
            "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}}}


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(kube, "LIST_PAGE", PAGE)


def test_a_list_is_read_in_pages_until_the_server_gives_no_continue(clusters, namespaces, small_pages):
    ns = namespaces()
    names = [f"cm-{i:02d}" for i in range(7)]
    for name in names:
        clusters.source.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": name}})
    cluster = kube.connect(str(clusters.kubeconfig), "source")
    items = kube.list_objects(cluster, "ConfigMap", ns)
    assert [i["metadata"]["name"] for i in items] == names
    assert {(i["kind"], i["apiVersion"]) for i in items} == {("ConfigMap", "v1")}
    assert cluster.requests == math.ceil(len(names) / PAGE)


def test_a_label_selected_batch_of_vms_is_read_whole_across_pages(clusters, namespaces, small_pages):
    ns = namespaces()
    for i in range(9):
        clusters.source.request("POST", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines",
                                vm(f"vm-{i}", {"app": "paged" if i % 3 else "other"}))
    cluster = kube.connect(str(clusters.kubeconfig), "source")
    source = kube.read_source(cluster, ns, [], "app=paged")
    assert [o["metadata"]["name"] for o in source.of_kind("VirtualMachine")] == ["vm-1", "vm-2", "vm-4", "vm-5",
                                                                                "vm-7", "vm-8"]
    vms_requests = cluster.requests
    cluster.requests = 0
    assert len(kube.list_objects(cluster, "VirtualMachine", ns)) == 9
    assert cluster.requests == math.ceil(9 / PAGE)
    assert vms_requests >= 3 + len(kube.SOURCE_KINDS) - 1  # the VMs took pages; every other kind one (empty) page
