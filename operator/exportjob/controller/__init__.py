"""The ExportJob operator: Kopf watches, one reconcile loop, admission, worker Jobs, status, events and metrics.

Layering (pure modules import neither Kopf nor a Kubernetes client):
- pure: `settings`, `admission`, `manifests`, `outcome`, `transitions`
- I/O: `kube` (the only module calling the API), `metrics` (the only one defining metrics)
- orchestration: `reconciler` (the loop), `handlers` (Kopf registrations), `main` (entry point)
"""
