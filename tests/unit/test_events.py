"""Events are a pure function of the status change: one per transition, none for a rewrite."""

from exportjob.controller.events import events_for
from exportjob.status import ExportJobStatus


def test_each_transition_gets_one_event_and_a_rewrite_none():
    queued = ExportJobStatus(phase="Queued")
    running = ExportJobStatus(phase="Running", job_name="exportjob-a-1")
    done = ExportJobStatus(phase="Succeeded", rows=3, size="10 B", path="a.csv", sha256="ab")
    assert [e.reason for e in events_for(ExportJobStatus(), queued)] == ["Queued"]
    assert events_for(queued, queued) == []
    (admitted,) = events_for(queued, running)
    assert (admitted.type, admitted.reason, admitted.message) == (
        "Normal",
        "Admitted",
        "started worker Job exportjob-a-1",
    )
    assert events_for(running, running.model_copy(update={"attempts": 2})) == []
    (succeeded,) = events_for(running, done)
    assert succeeded.reason == "Succeeded" and "sha256 ab" in succeeded.message


def test_failures_and_waits_are_warnings_with_their_reason():
    failed = ExportJobStatus(phase="Failed", reason="DiskFull", message="no space")
    (event,) = events_for(ExportJobStatus(phase="Running"), failed)
    assert (event.type, event.reason, event.message) == ("Warning", "DiskFull", "no space")
    waiting = ExportJobStatus(phase="Waiting", reason="ClaimNotFound", message="claim x")
    assert [e.reason for e in events_for(ExportJobStatus(), waiting)] == ["ClaimNotFound"]
    other = waiting.model_copy(update={"reason": "SecretNotFound"})
    assert [e.reason for e in events_for(waiting, other)] == ["SecretNotFound"]
