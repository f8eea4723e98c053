"""kubectl_dlm.handler_metrics: virt-handler's text exposition, read as the KubeVirt tier's played
virt-handler pods serve it (tests/kubevirt/handler_pods.py render, from migrationstats_collector.go)."""

from __future__ import annotations

import pytest

from kubectl_dlm import handler_metrics


def served(*readings):
    """(name, namespace, node, fraction done, dirty rate) -> the text a virt-handler pod serves."""
    from tests.kubevirt import handler_pods

    return handler_pods.render([(ns, name, node, {"total": 1000, "processed": int(1000 * done),
                                                  "remaining": 1000 - int(1000 * done), "rate": 100,
                                                  "dirty_rate": dirty})
                                for name, ns, node, done, dirty in readings])


def test_the_series_of_exactly_this_vmi_on_this_node():
    text = served(("vm1", "prod", "node01", 0.25, 7), ("vm1", "prod-b", "node01", 0.9, 0),
                  ("vm10", "prod", "node01", 0.9, 0), ("vm1", "prod", "node02", 0.9, 0))
    assert handler_metrics.progress(text, "prod", "vm1", "node01") == {
        "total": 1000, "processed": 250, "remaining": 750, "rate": 100, "dirty_rate": 7}
    assert handler_metrics.progress(text, "prod", "vm1", "node03") is None
    assert handler_metrics.progress(text, "prod", "vm", "node01") is None  # no prefix match


@pytest.mark.parametrize("name", ["kubevirt_vmi_migration_data_bytes_total", "kubevirt_vmi_migration_data_total_bytes"])
def test_both_names_of_the_total(name):
    text = (f'# TYPE {name} counter\n{name}{{name="vm1",namespace="prod",node="n1"}} 4.2e+09\n'
            'kubevirt_vmi_migration_data_remaining_bytes{node="n1",namespace="prod",name="vm1"} 1e+09 1700000000000\n')
    assert handler_metrics.progress(text, "prod", "vm1", "n1") == {"total": 4.2e9, "remaining": 1e9}


def test_escaped_label_values_and_junk_lines():
    text = ('kubevirt_vmi_migration_data_processed_bytes{name="a\\"b",namespace="prod",node="n1"} 5\n'
            'not a sample\nkubevirt_vmi_migration_data_processed_bytes{name="x"} NaNish\n')
    assert handler_metrics.progress(text, "prod", 'a"b', "n1") == {"processed": 5}


def test_handler_pod_on_the_node():
    # the DaemonSet's container ports (daemonsets.go:233-244): metrics 8443, vmstats 8187
    ports = [{"name": "vmstats", "containerPort": 8187}, {"name": "metrics", "containerPort": 9443}]
    pods = [{"metadata": {"name": "virt-handler-b"}, "spec": {"nodeName": "n2"}, "status": {"phase": "Running"}},
            {"metadata": {"name": "virt-handler-a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}},
            {"metadata": {"name": "virt-handler-c"}, "spec": {"nodeName": "n1", "containers": [{"ports": ports}]},
             "status": {"phase": "Running"}}]
    assert handler_metrics.handler_pod(pods, "n1") == ("virt-handler-c", 9443)
    assert handler_metrics.handler_pod(pods, "n2") == ("virt-handler-b", 8443)  # no port named metrics
    assert handler_metrics.handler_pod(pods, "n3") is None
