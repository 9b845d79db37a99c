"""devcluster: a local Kubernetes control plane (real etcd, kube-apiserver, kube-controller-manager) plus a process kubelet, for tests and the demo."""

from .cluster import DevCluster, DevClusterError, MissingToolsError

__all__ = ["DevCluster", "DevClusterError", "MissingToolsError"]
