"""Pure parts of `exportjob download|list|describe`: Range parsing, the reader Pod, status checks, views, CLI."""

from datetime import UTC, datetime

import pytest

from exportjob.cli import VERBS, build_parser
from exportjob.client.readerpod import MOUNTED_FILE, NotDownloadable, download_target, pod_problem, reader_pod
from exportjob.client.views import age, describe_lines, list_lines
from exportjob.worker.servefile import UNSATISFIABLE, parse_range

SHA = "a" * 64
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def exportjob(**status):
    return {
        "metadata": {"name": "orders", "namespace": "shop", "uid": "u", "creationTimestamp": "2026-01-02T03:00:00Z"},
        "spec": {"format": "csv", "source": {"synthetic": {"records": 3}}, "output": {"path": "r/o.csv"}},
        "status": status,
    }


DONE = {"phase": "Succeeded", "claimName": "exports", "path": "r/o.csv", "sha256": SHA, "bytes": 10, "rows": 3}


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, (0, 4)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=5-100", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=10-", 10, UNSATISFIABLE),
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=4-2", 10, None),
        ("bytes=0-1,4-5", 10, None),  # several ranges: the whole file
        ("items=0-1", 10, None),
        ("bytes=x-", 10, None),
    ],
)
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


def test_download_target_from_a_succeeded_status():
    target = download_target(exportjob(**DONE))
    assert (target.namespace, target.claim_name, target.path, target.sha256, target.size) == (
        "shop",
        "exports",
        "r/o.csv",
        SHA,
        10,
    )


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({"phase": "Running"}, "is Running, not Succeeded"),
        ({"phase": "Failed", "reason": "QueryFailed", "message": "boom"}, "failed (QueryFailed): boom"),
        ({**DONE, "sha256": None}, "lacks sha256"),
        ({**DONE, "path": "../etc/passwd"}, "not a plain relative path"),
        ({**DONE, "path": "/abs"}, "not a plain relative path"),
        ({**DONE, "sha256": "xyz"}, "not a SHA-256"),
    ],
)
def test_not_downloadable(status, message):
    with pytest.raises(NotDownloadable, match=message.replace("(", r"\(").replace(")", r"\)")):
        download_target(exportjob(**status))


def test_reader_pod_is_locked_down():
    pod = reader_pod(download_target(exportjob(**DONE)), image="img:1")
    spec = pod["spec"]
    assert pod["metadata"]["generateName"] == "exportjob-download-orders-"
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["activeDeadlineSeconds"] > 0 and spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["volumes"] == [{"name": "export", "persistentVolumeClaim": {"claimName": "exports", "readOnly": True}}]
    (container,) = spec["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["volumeMounts"] == [
        {"name": "export", "mountPath": MOUNTED_FILE, "subPath": "r/o.csv", "readOnly": True}
    ]
    assert container["command"] == ["python", "-m", "exportjob.worker.servefile"]
    assert f"--file={MOUNTED_FILE}" in container["args"]


def test_pod_problem():
    assert pod_problem({"status": {"phase": "Pending"}}) is None
    ended = {"status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 65}}}]}}
    assert "exit 65" in pod_problem(ended)
    pull = {"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]}}
    assert "ErrImagePull" in pod_problem(pull)


def test_age():
    assert age("2026-01-02T03:04:00Z", NOW) == "5s"
    assert age("2026-01-02T02:00:00Z", NOW) == "64m"
    assert age("2026-01-01T00:00:00Z", NOW) == "27h"
    assert age(None, NOW) == "<unknown>"


def test_list_lines():
    queued = exportjob(phase="Queued", queuePosition=2)
    queued["metadata"] = {**queued["metadata"], "name": "a-first"}
    lines = list_lines([exportjob(**DONE), queued], NOW, all_namespaces=True)
    assert lines[0].split() == ["NAMESPACE", "NAME", "STATUS", "FORMAT", "ROWS", "SIZE", "REASON", "AGE"]
    assert lines[1].split() == ["shop", "a-first", "Queued", "(#2)", "csv", "4m"]
    assert lines[2].split() == ["shop", "orders", "Succeeded", "csv", "3", "4m"]
    assert list_lines([], NOW, all_namespaces=False) == ["No ExportJobs found."]


def test_describe_lines():
    conditions = [
        {"type": "Complete", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2026-01-02T03:04:00Z"}
    ]
    events = [
        {"type": "Normal", "reason": "Succeeded", "lastTimestamp": "2026-01-02T03:04:00Z", "message": "wrote 3 rows"}
    ]
    text = "\n".join(describe_lines(exportjob(**DONE, conditions=conditions), events, "line1\nline2\n", "pod p", NOW))
    assert "Phase:        Succeeded" in text and f"SHA-256:      {SHA}" in text
    assert "Complete   True     Succeeded" in text
    assert "wrote 3 rows" in text and "Worker log: pod p\n  line1\n  line2" in text
    bare = "\n".join(describe_lines(exportjob(), [], None, "no worker Pod", NOW))
    assert "Phase:        Pending" in bare and "Conditions:\n  <none>" in bare and "Events:\n  <none>" in bare


def test_every_verb_parses():
    parser = build_parser()
    assert len(VERBS) == 6
    assert parser.parse_args(["queue", "-n", "ns", "-o", "json"]).output == "json"
    assert parser.parse_args(["download", "x", "-n", "ns", "-o", "-"]).output == "-"
    assert parser.parse_args(["list", "-A"]).all_namespaces is True
    assert parser.parse_args(["describe", "x", "--context", "c"]).context == "c"
    with pytest.raises(SystemExit):
        parser.parse_args(["download"])


def test_age_reads_fractional_seconds():
    assert age("2026-01-02T03:04:00.123456Z", NOW) == "4s"
    assert age("2026-01-02T03:04:00.123456+00:00", NOW) == "4s"
