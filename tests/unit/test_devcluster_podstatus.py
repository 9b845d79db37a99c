"""Pod status documents written by the process kubelet."""

import pytest

from devcluster.podstatus import ContainerRun, build_status, exit_code_of, pod_phase


def run(name="main", state="waiting", code=None, restarts=0, init=False):
    c = ContainerRun(name, "img", init=init)
    if state in ("running", "terminated"):
        c.set_running(100)
    if state == "terminated":
        c.set_terminated(code)
    c.restart_count = restarts
    return c


@pytest.mark.parametrize(("returncode", "exit_code"), [(0, 0), (3, 3), (-9, 137), (-15, 143), (-2, 130)])
def test_exit_code_of_signal_deaths(returncode, exit_code):
    assert exit_code_of(returncode) == exit_code


@pytest.mark.parametrize(
    ("policy", "containers", "phase"),
    [
        ("Never", [run()], "Pending"),
        ("Never", [run(state="running")], "Running"),
        ("Never", [run(state="terminated", code=0)], "Succeeded"),
        ("Never", [run(state="terminated", code=1)], "Failed"),
        ("Never", [run(state="terminated", code=0), run("b", state="running")], "Running"),
        ("Never", [run(state="terminated", code=0), run("b", state="terminated", code=2)], "Failed"),
        ("OnFailure", [run(state="terminated", code=1)], "Running"),
        ("OnFailure", [run(state="terminated", code=0)], "Succeeded"),
        ("OnFailure", [run(restarts=1)], "Running"),
    ],
)
def test_pod_phase(policy, containers, phase):
    assert pod_phase(policy, [], containers) == phase


def test_init_containers_gate_the_phase():
    assert pod_phase("Never", [run("i", state="running", init=True)], [run()]) == "Pending"
    assert pod_phase("Never", [run("i", state="terminated", code=1, init=True)], [run()]) == "Failed"
    assert pod_phase("OnFailure", [run("i", state="terminated", code=1, init=True)], [run()]) == "Pending"


def conds(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_running_pod_is_ready():
    st = build_status(restart_policy="Never", init=[], main=[run(state="running")], start_time="t0")
    assert st["phase"] == "Running"
    assert conds(st) == {
        "PodReadyToStartContainers": ("True", None),
        "Initialized": ("True", None),
        "ContainersReady": ("True", None),
        "Ready": ("True", None),
    }
    cs = st["containerStatuses"][0]
    assert cs["ready"] is True and cs["started"] is True
    assert cs["state"]["running"]["startedAt"] and cs["state"]["waiting"] is None
    assert cs["containerID"] == "process://100"


def test_terminated_pod_status():
    c = run(state="terminated", code=0)
    c.message = "done"
    st = build_status(restart_policy="Never", init=[], main=[c], start_time="t0")
    assert st["phase"] == "Succeeded"
    assert conds(st)["Ready"] == ("False", "PodCompleted")
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (0, "Completed", "done")
    assert term["startedAt"] and term["finishedAt"]
    failed = build_status(restart_policy="Never", init=[], main=[run(state="terminated", code=7)], start_time="t")
    assert failed["phase"] == "Failed"
    assert failed["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"


def test_pending_pod_reports_waiting_reason():
    c = run()
    c.set_waiting("CreateContainerConfigError", 'secret "x" not found')
    st = build_status(restart_policy="Never", init=[], main=[c], start_time="t0")
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"]["waiting"] == {
        "reason": "CreateContainerConfigError",
        "message": 'secret "x" not found',
    }
    assert conds(st)["Ready"] == ("False", "ContainersNotReady")


def test_transition_times_are_kept_while_status_is_unchanged():
    first = build_status(restart_policy="Never", init=[], main=[run()], start_time="t0", timestamp="T1")
    second = build_status(
        restart_policy="Never",
        init=[],
        main=[run(state="running")],
        start_time="t0",
        previous_conditions=first["conditions"],
        timestamp="T2",
    )
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["Initialized"] == "T1"
    assert times["Ready"] == "T2"


def test_restart_moves_state_to_last_state():
    c = run(state="terminated", code=1)
    c.prepare_restart()
    doc = c.status_doc()
    assert doc["restartCount"] == 1
    assert doc["lastState"]["terminated"]["exitCode"] == 1
    assert doc["state"]["waiting"]["reason"] == "CrashLoopBackOff"
