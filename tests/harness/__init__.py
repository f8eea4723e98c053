"""Real Kubernetes API servers for tests: etcd + mini-kube-apiserver (built by tests/infra/build.sh).

apiserver.py starts one cluster; clusters.py holds the pytest fixtures (source and target)."""
