"""kubectl-dlm: decentralized live migration of KubeVirt VMs between namespaces and clusters."""

__version__ = "0.1.0"
