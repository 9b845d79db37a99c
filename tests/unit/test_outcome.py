"""Classifying finished worker Jobs: success with the worker's result, and every failure path."""

import json

from exportjob.controller.outcome import observe_job, parse_result


def job(condition=None, reason="", **status):
    conditions = (
        [{"type": condition, "status": "True", "reason": reason, "lastTransitionTime": "2026-01-01T00:01:00Z"}]
        if condition
        else []
    )
    return {
        "spec": {"activeDeadlineSeconds": 60},
        "status": {"conditions": conditions, "startTime": "2026-01-01T00:00:00Z", **status},
    }


def pod(exit_code, message="", finished="2026-01-01T00:00:59Z"):
    return {
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "message": message,
                            "finishedAt": finished,
                            "reason": "Error" if exit_code else "Completed",
                        }
                    }
                }
            ]
        }
    }


OK = {"ok": True, "rows": 10, "bytes": 100, "sha256": "ab" * 32, "path": "a.csv", "durationSeconds": 1.5}


def test_running():
    outcome = observe_job(job(active=1), [])
    assert outcome.state == "Running" and not outcome.finished and outcome.attempts == 1


def test_complete_with_result():
    outcome = observe_job(job("Complete", succeeded=1, completionTime="2026-01-01T00:01:00Z"), [pod(0, json.dumps(OK))])
    assert (
        outcome.state == "Succeeded"
        and outcome.result["rows"] == 10
        and outcome.completion_time == "2026-01-01T00:01:00Z"
    )


def test_complete_without_result_is_a_crash():
    outcome = observe_job(job("Complete", succeeded=1), [pod(0, "")])
    assert (outcome.state, outcome.reason) == ("Failed", "WorkerCrashed")


def test_permanent_failure_takes_the_workers_reason():
    result = {"ok": False, "reason": "QueryFailed", "message": 'relation "nope" does not exist', "retryable": False}
    outcome = observe_job(job("Failed", "PodFailurePolicy", failed=1), [pod(65, json.dumps(result))])
    assert (outcome.state, outcome.reason) == ("Failed", "QueryFailed")
    assert "nope" in outcome.message


def test_retries_exhausted_report_the_last_attempts_reason():
    first = pod(
        75, json.dumps({"ok": False, "reason": "SourceUnreachable", "message": "refused"}), "2026-01-01T00:00:10Z"
    )
    last = pod(75, json.dumps({"ok": False, "reason": "SourceTimeout", "message": "timed out"}), "2026-01-01T00:00:50Z")
    outcome = observe_job(job("Failed", "BackoffLimitExceeded", failed=2), [last, first])
    assert (outcome.reason, outcome.attempts) == ("SourceTimeout", 2)


def test_deadline_exceeded():
    outcome = observe_job(job("Failed", "DeadlineExceeded", failed=1), [])
    assert outcome.reason == "DeadlineExceeded" and "activeDeadlineSeconds=60" in outcome.message


def test_killed_by_signal_is_a_crash_with_a_hint():
    outcome = observe_job(job("Failed", "BackoffLimitExceeded", failed=1), [pod(137)])
    assert outcome.reason == "WorkerCrashed" and "signal 9" in outcome.message


def test_parse_result_ignores_foreign_messages():
    assert parse_result("") == {} and parse_result("not json") == {} and parse_result('{"x": 1}') == {}
    assert parse_result(json.dumps(OK))["rows"] == 10
