"""Status transitions: conditions per API conventions, minimal patches, terminal results."""

from exportjob.controller import transitions
from exportjob.controller.outcome import Outcome
from exportjob.status import ExportJobStatus

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "2026-01-01T00:01:00Z"


def test_queueing_again_is_a_no_op_and_keeps_the_transition_time():
    first = transitions.queued(ExportJobStatus(), now=T0, generation=1)
    again = transitions.queued(first, now=T1, generation=1)
    (condition,) = again.conditions
    assert (condition.type, condition.status, condition.reason, condition.last_transition_time) == (
        "Admitted",
        "False",
        "Queued",
        T0,
    )
    # No position is written: it would change on every admission (docs/operator.md, "The queue").
    assert "queuePosition" not in again.to_wire()
    assert transitions.status_patch(first.to_wire(), again.to_wire()) == {}


def test_admission_moves_the_admitted_condition_and_keeps_the_queue_time():
    queued = transitions.queued(ExportJobStatus(), now=T0, generation=1)
    running = transitions.admitted(
        queued, job_name="exportjob-a-1", claim="exports", path="a.csv", now=T1, generation=1
    )
    assert running.phase == "Running" and running.admitted_at == T1 and running.queued_at == T0
    assert running.condition("Admitted").last_transition_time == T1


def test_success_records_the_result():
    running = transitions.admitted(ExportJobStatus(), job_name="j", claim="c", path="a.csv", now=T0, generation=1)
    result = {
        "ok": True,
        "rows": 1200,
        "bytes": 3 * 1024 * 1024,
        "sha256": "f" * 64,
        "path": "a.csv",
        "startedAt": T1,
        "finishedAt": T2,
        "durationSeconds": 55.0,
        "peakMemoryBytes": 40_000_000,
    }
    done = transitions.finished(running, outcome=Outcome("Succeeded", result=result, attempts=1), now=T2, generation=1)
    assert (done.phase, done.rows, done.bytes, done.size, done.sha256) == (
        "Succeeded",
        1200,
        3145728,
        "3.0 MiB",
        "f" * 64,
    )
    assert (done.start_time, done.completion_time, done.duration_seconds, done.worker_peak_memory_bytes) == (
        T1,
        T2,
        55.0,
        40_000_000,
    )
    assert done.condition("Complete").status == "True" and done.is_terminal


def test_failure_records_reason_and_message():
    outcome = Outcome("Failed", reason="DiskFull", message="no space left on the claim", attempts=4)
    done = transitions.finished(ExportJobStatus(), outcome=outcome, now=T2, generation=2)
    failed = done.condition("Failed")
    assert (done.phase, done.reason, failed.reason, failed.message, failed.observed_generation) == (
        "Failed",
        "DiskFull",
        "DiskFull",
        "no space left on the claim",
        2,
    )


def test_waiting_names_what_is_missing():
    status = transitions.waiting(
        ExportJobStatus(), reason="ClaimNotFound", message='PersistentVolumeClaim "x" not found', now=T0, generation=1
    )
    assert (status.phase, status.reason, status.condition("Admitted").reason) == (
        "Waiting",
        "ClaimNotFound",
        "ClaimNotFound",
    )


def test_human_size():
    assert [transitions.human_size(n) for n in (0, 1023, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]


def test_success_message_warns_about_replaced_glyphs():
    result = {"ok": True, "rows": 2, "bytes": 900, "path": "t.pdf", "replacedGlyphs": 2}
    done = transitions.finished(ExportJobStatus(), outcome=Outcome("Succeeded", result=result), now=T2, generation=1)
    assert "2 characters that no font of pdf.fonts has" in done.condition("Complete").message
