"""devcluster: a local Kubernetes control plane for tests and the demo.

Real etcd, kube-apiserver and kube-controller-manager, plus a process kubelet.
"""

from .cluster import DevCluster, DevClusterError, MissingToolsError

__all__ = ["DevCluster", "DevClusterError", "MissingToolsError"]
