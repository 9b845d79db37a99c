"""The admin's `claimSelector` / `secretSelector` (issue 9, item 3) against the real API server.

The operator reads labels with metadata-only requests (`KubeApi.object_labels`);
an object that does not match keeps the export Waiting with the same message
as an object that does not exist, and labelling it lets the export go on.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from operator_harness import ExportJobs, wait_until

pytestmark = pytest.mark.cluster

USABLE = {"exportjob.io/usable": "true"}


def test_only_labelled_claims_and_secrets_are_used(exportjobs: ExportJobs, start_operator, k8s_client, namespace):
    core = client.CoreV1Api(k8s_client)
    exportjobs.create_secret("api", {"token": "t0ken-value"})
    start_operator(claim_selector="exportjob.io/usable=true", secret_selector="exportjob.io/usable=true")
    exportjobs.create(
        "guarded",
        {
            "format": "csv",
            "output": {"claimName": "exports", "path": "g.csv"},
            "source": {
                "http": {
                    "url": "http://127.0.0.1:9/rows",
                    "timeoutSeconds": 1,
                    "bearerTokenSecretRef": {"name": "api", "key": "token"},
                }
            },
        },
    )
    exportjobs.create(
        "missing-secret",
        {
            "format": "csv",
            "output": {"claimName": "exports", "path": "m.csv"},
            "source": {
                "http": {"url": "http://127.0.0.1:9/", "bearerTokenSecretRef": {"name": "nope", "key": "token"}}
            },
        },
    )

    waiting = exportjobs.wait_for_phase("guarded", "Waiting")
    assert waiting["reason"] == "ClaimNotFound" and "claimSelector" in waiting["message"], waiting

    core.patch_namespaced_persistent_volume_claim("exports", namespace, {"metadata": {"labels": USABLE}})
    wait_until(
        lambda: exportjobs.status("guarded").get("reason") == "SecretNotFound", 60, "guarded to wait for its Secret"
    )
    unlabelled = exportjobs.status("guarded")["message"]
    missing = wait_until(
        lambda: (s := exportjobs.status("missing-secret")).get("reason") == "SecretNotFound" and s,
        60,
        "missing-secret to wait for its Secret",
    )
    # The requester cannot tell an existing-but-excluded Secret from a missing one.
    assert unlabelled.replace('"api"', "X").replace('"token"', "K") == missing["message"].replace(
        '"nope"', "X"
    ).replace('"token"', "K")

    core.patch_namespaced_secret("api", namespace, {"metadata": {"labels": USABLE}})
    status = exportjobs.wait_for_phase("guarded", ("Running", "Succeeded", "Failed"))
    assert status.get("reason") not in ("ClaimNotFound", "SecretNotFound")
