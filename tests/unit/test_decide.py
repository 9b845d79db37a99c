"""The reconciler's decision table, row by row, without a cluster."""

from exportjob.controller.decide import FailInvalid, Finish, Follow, Missing, Queue, Skip, Wait, decide
from exportjob.reasons import Reason
from exportjob.status import ExportJobStatus

RUNNING_JOB = {"metadata": {"name": "j"}, "status": {"active": 1}}
DONE_JOB = {"metadata": {"name": "j"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
MISSING = Missing(Reason.CLAIM_NOT_FOUND, "no claim")


def run(**overrides):
    calls = []

    def prerequisites():
        calls.append(1)
        return overrides.pop("missing", None)

    kwargs = {"deleting": False, "status": ExportJobStatus(), "spec_error": None, "job": None}
    kwargs.update({k: v for k, v in overrides.items() if k != "missing"})
    return decide(prerequisites=prerequisites, **kwargs), calls


def test_deleting_is_skipped():
    assert isinstance(run(deleting=True, job=RUNNING_JOB)[0], Skip)


def test_terminal_is_skipped_it_is_leaving_the_watch():
    action, calls = run(status=ExportJobStatus(phase="Succeeded"), job=RUNNING_JOB)
    assert action == Skip("finished") and calls == []


def test_invalid_spec_fails_before_anything_else_is_looked_up():
    action, calls = run(spec_error="spec.format: bad")
    assert action == FailInvalid("spec.format: bad") and calls == []


def test_a_running_job_is_followed_and_a_finished_one_finished():
    assert run(job=RUNNING_JOB)[0] == Follow(RUNNING_JOB)
    assert run(job=DONE_JOB)[0] == Finish(DONE_JOB)


def test_prerequisites_are_checked_only_without_a_job():
    assert run(job=RUNNING_JOB)[1] == []
    action, calls = run(missing=MISSING)
    assert action == Wait(MISSING) and calls == [1]


def test_ready_exports_queue_and_a_lost_job_is_noticed():
    assert run()[0] == Queue(job_lost=False)
    assert run(status=ExportJobStatus(phase="Running"))[0] == Queue(job_lost=True)
