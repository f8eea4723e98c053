"""virt-operator's part in DLM: KubeVirt status.synchronizationAddresses and the CA ConfigMaps (§5)."""
from __future__ import annotations

from . import ca
from .constants import CA_BUNDLE_KEY, CM_CA, CM_EXTERNAL_CA, INSTALL_NAMESPACE, MGR_OPERATOR
from .objects import dig
from .runtime import Controller

DROP_BOX_LABELS = {"app.kubernetes.io/component": "kubevirt", "app.kubernetes.io/managed-by": "virt-operator"}


class Operator(Controller):
    name = "virt-operator"

    def reconcile(self, key):
        if key[0] == "kubevirt":
            self._sync_addresses(key[1], key[2])
        else:
            self._sync_ca()

    def _sync_addresses(self, namespace: str, name: str) -> None:
        """OP:811-872: our sync controller pod's address while the gate is on; nil when it is off."""
        kv = self.cluster.get("kubevirt", namespace, name)
        if kv is None:
            return
        want = [self.cluster.own_sync_address] if self.cluster.gate_enabled() else None
        status = kv.setdefault("status", {})
        if (status.get("synchronizationAddresses") or None) == want:
            return
        if want is None:
            status.pop("synchronizationAddresses", None)
        else:
            status["synchronizationAddresses"] = want
        self.cluster.replace_status("kubevirt", kv, MGR_OPERATOR)

    def _sync_ca(self) -> None:
        c = self.cluster
        ns = INSTALL_NAMESPACE
        drop = c.get("configmap", ns, CM_EXTERNAL_CA)
        if drop is None:  # OP:702-722: create the drop box
            c.create("configmap", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": CM_EXTERNAL_CA, "namespace": ns, "labels": DROP_BOX_LABELS},
                                   "data": {CA_BUNDLE_KEY: ""}}, MGR_OPERATOR)
            return
        external = dig(drop, "data", CA_BUNDLE_KEY, default="")
        bundle = c.get("configmap", ns, CM_CA)
        prune = self.sim.faults.ca_overlap_elapsed.get(c.name, False)
        merged = ca.merge_external(c.own_ca, dig(bundle, "data", CA_BUNDLE_KEY), external, prune_to_own=prune)
        if bundle is None:
            # OP:734-751: a new kubevirt-ca lists the external certs before the own CA
            certs = ca.parse_bundle(merged)
            own = [x for x in certs if c.own_ca and x.sha256 == c.own_ca.sha256]
            c.create("configmap", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": CM_CA, "namespace": ns},
                                   "data": {CA_BUNDLE_KEY: ca.bundle_text([x for x in certs if x not in own] + own)}},
                     MGR_OPERATOR)
        elif _order(merged) != _order(dig(bundle, "data", CA_BUNDLE_KEY)):
            bundle.setdefault("data", {})[CA_BUNDLE_KEY] = merged
            c.replace("configmap", bundle, MGR_OPERATOR)
        if external != "" or drop.get("metadata", {}).get("labels") != DROP_BOX_LABELS:
            # OP:375-398: reset the drop box (data, labels and annotations replaced)
            drop["data"] = {CA_BUNDLE_KEY: ""}
            drop["metadata"]["labels"] = dict(DROP_BOX_LABELS)
            drop["metadata"].pop("annotations", None)
            c.replace("configmap", drop, MGR_OPERATOR)


def _order(text: str | None) -> list[str]:
    try:
        return [x.sha256 for x in ca.parse_bundle(text)]
    except ca.PemError:
        return ["<unparsable>"]
