"""The user's side of the API: `exportjob download|list|describe` (the kubectl plugin `kubectl exportjob`).

Pure modules (`readerpod`, `views`) build manifests and text; `transfer` moves
bytes between an HTTP stream and a file; `kubeapi` is the only module here that
talks to the Kubernetes API (with the user's own kubeconfig and RBAC);
`commands` wires them into CLI verbs.
"""
