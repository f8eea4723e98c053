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


@pytest.mark.cluster
def test_an_expired_continue_token_restarts_the_list_once_without_a_limit(kube_bin, tmp_path, monkeypatch):
    """client-go's pager (k8s.io/client-go/tools/pager/pager.go, ListPager.List with FullListIfExpired):
    when page 2 or later answers 410 Expired, list once more without limit and continue, and keep that.

    The 410 is the server's own: a test API server without the watch cache (so a continue is read
    from etcd, not from the cache's snapshots) whose etcd history is compacted between the first and
    the second page, as a long list on a busy cluster meets the API server's periodic compaction."""
    from kubernetes.client.exceptions import ApiException

    from tests.harness.apiserver import ApiServer
    from tests.harness.clusters import write_kubeconfig

    api = ApiServer("expiry", kube_bin, tmp_path / "expiry", flags=("--watch-cache=false",))
    api.start()
    try:
        api.wait_ready()
        api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "paged"}})
        made = [f"cm-{i}" for i in range(5)]
        for name in made:
            api.request("POST", "/api/v1/namespaces/paged/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
        write_kubeconfig(tmp_path / "kubeconfig", [api])
        cluster = kube.connect(str(tmp_path / "kubeconfig"), "expiry")
        monkeypatch.setattr(kube, "LIST_PAGE", PAGE)
        sent, answers, compacted = [], [], []
        real = kube._request

        def observed(cluster, method, path, query, *args):
            sent.append(dict(query))
            if len(sent) == 2:  # between the pages: one more write, then etcd forgets the first page's revision
                api.request("POST", "/api/v1/namespaces/paged/configmaps",
                            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-late"}})
                compacted.append(api.compact_etcd())
            try:
                result = real(cluster, method, path, query, *args)
            except ApiException as exc:
                answers.append(exc.status)
                raise
            answers.append(200)
            return result

        monkeypatch.setattr(kube, "_request", observed)
        items = kube.list_objects(cluster, "ConfigMap", "paged")
    finally:
        api.stop()
    assert compacted and answers == [200, 410, 200]
    assert [(q.get("limit"), "continue" in q) for q in sent] == [(PAGE, False), (PAGE, True), (None, False)]
    # the full list is read at the latest revision: the write made between the pages is in it
    assert sorted(i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith("cm-")) == sorted(made + ["cm-late"])


@pytest.mark.cluster
def test_access_reviews_answer_in_order_the_first_asked_alone(clusters, monkeypatch):
    """kube.access_reviews asks the first SelfSubjectAccessReview alone, then the rest side by side,
    and answers in the order asked (the checks pair each answer with its rule)."""
    cluster = kube.connect(str(clusters.kubeconfig), "source")
    asks = [("get", f"things{i}", "example.com", "ns", "") for i in range(20)]
    before = cluster.requests
    answers = kube.access_reviews(cluster, asks)
    assert len(answers) == 20 and all(allowed is True for allowed, _ in answers)  # system:masters may do all
    assert cluster.requests - before == 20
    assert kube.access_reviews(cluster, []) == []

    # When the server cannot answer the first (reviews forbidden, no authorization API), the others
    # are not asked: the one answer says why.
    asked = []

    def unanswerable(cluster, *ask):
        asked.append(ask)
        return None, "create SelfSubjectAccessReview: forbidden"
    monkeypatch.setattr(kube, "access_review", unanswerable)
    assert kube.access_reviews(cluster, asks) == [(None, "create SelfSubjectAccessReview: forbidden")]
    assert asked == [asks[0]]
