"""The store kept from watch events and LISTs: newest wins, deletions stick, finished objects leave."""

from exportjob.controller.manifests import LABEL_EXPORT_UID, LABEL_FINISHED
from exportjob.controller.store import ClusterState


def ej(uid: str, rv: int, finished: bool = False) -> dict:
    status = {"phase": "Succeeded" if finished else "Queued"}
    return {
        "metadata": {"uid": uid, "name": uid, "namespace": "ns", "resourceVersion": str(rv), "labels": {}},
        "status": status,
    }


def job(owner: str, rv: int, uid: str = "job-uid", finished: bool = False) -> dict:
    labels = {LABEL_EXPORT_UID: owner, **({LABEL_FINISHED: "true"} if finished else {})}
    return {
        "metadata": {
            "uid": uid,
            "name": f"job-{owner}",
            "namespace": "ns",
            "resourceVersion": str(rv),
            "labels": labels,
        }
    }


def test_an_older_event_never_overwrites_a_newer_object():
    state = ClusterState()
    state.apply_exportjob("ADDED", ej("a", 5))
    assert state.apply_exportjob("MODIFIED", ej("a", 4)).exports == set()
    assert state.exports["a"]["metadata"]["resourceVersion"] == "5"
    assert state.apply_exportjob("MODIFIED", ej("a", 6)).exports == {"a"}


def test_a_stale_event_cannot_resurrect_what_a_later_list_no_longer_has():
    state = ClusterState()
    state.replace([ej("b", 8)], "10", [], "10")
    assert state.apply_exportjob("MODIFIED", ej("a", 9)).exports == set()  # deleted before the LIST
    assert "a" not in state.exports
    assert state.apply_exportjob("ADDED", ej("c", 11)).exports == {"c"}


def test_finishing_is_not_deleting():
    state = ClusterState()
    state.apply_exportjob("ADDED", ej("a", 1))
    state.apply_exportjob("ADDED", ej("b", 1))
    change = state.apply_exportjob("DELETED", ej("a", 2, finished=True))  # left the field selector (status.phase)
    assert change.gone == [] and "a" not in state.exports
    change = state.apply_exportjob("DELETED", ej("b", 2))
    assert [o["metadata"]["uid"] for o in change.gone] == ["b"]


def test_jobs_are_kept_by_owner_and_leave_when_finished_or_deleted():
    state = ClusterState()
    state.apply_exportjob("ADDED", ej("a", 1))
    assert state.apply_job("ADDED", job("a", 2)).exports == {"a"}
    assert state.jobs["a"]["metadata"]["uid"] == "job-uid"
    state.apply_job("MODIFIED", job("a", 3, finished=True))
    assert "a" not in state.jobs


def test_own_placeholder_counts_until_the_real_job_replaces_it():
    state = ClusterState()
    placeholder = {"metadata": {"name": "job-a", "namespace": "ns", "labels": {LABEL_EXPORT_UID: "a"}}}
    state.put_job("a", placeholder)
    assert state.jobs["a"] is placeholder
    state.apply_job("ADDED", job("a", 7))
    assert state.jobs["a"]["metadata"]["resourceVersion"] == "7"
    state.forget_job("a", "job-a")
    assert "a" not in state.jobs


def test_orphans_are_jobs_without_their_export():
    state = ClusterState()
    state.replace([ej("a", 1)], "5", [job("a", 2), job("gone", 3, uid="other")], "5")
    assert [j["metadata"]["uid"] for j in state.orphans()] == ["other"]


def test_an_event_older_than_the_terminal_write_cannot_bring_a_finished_export_back():
    state = ClusterState()
    state.apply_exportjob("ADDED", ej("a", 1))
    state.apply_exportjob("MODIFIED", ej("a", 3, finished=True))  # the operator's own status write, folded in
    assert "a" not in state.exports
    assert state.apply_exportjob("MODIFIED", ej("a", 2)).exports == set()  # its earlier status write, still in flight
    assert "a" not in state.exports
    assert state.apply_exportjob("DELETED", ej("a", 3, finished=True)).gone == []


def test_what_the_operator_never_reads_is_not_kept():
    state = ClusterState()
    obj = ej("a", 1)
    obj["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"}
    state.apply_exportjob("ADDED", obj)
    held = state.exports["a"]["metadata"]
    assert "managedFields" not in held and held["annotations"] == {"keep": "me"} and held["resourceVersion"] == "1"


def test_slots_are_counted_per_namespace_as_jobs_come_finish_and_go():
    """`running` always equals a count over the held Jobs, without the reconciler walking them."""
    state = ClusterState()

    def recount() -> dict:
        counted: dict = {}
        for held in state.jobs.values():
            if not (held.get("status") or {}).get("conditions"):
                namespace = held["metadata"]["namespace"]
                counted[namespace] = counted.get(namespace, 0) + 1
        return counted

    placeholder = {"metadata": {"name": "job-a", "namespace": "ns", "labels": {LABEL_EXPORT_UID: "a"}}}
    state.put_job("a", placeholder)
    assert state.running == {"ns": 1} == recount()
    state.apply_job("ADDED", job("a", 7))  # the real Job replaces the placeholder: still one slot
    elsewhere = job("b", 8, uid="other")
    elsewhere["metadata"]["namespace"] = "x"
    state.apply_job("ADDED", elsewhere)
    assert state.running == {"ns": 1, "x": 1} == recount() and state.running_total == 2
    done = {**job("a", 9), "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    state.apply_job("MODIFIED", done)  # finished, not yet labelled: held, but its slot is free
    assert "a" in state.jobs and state.running == {"x": 1} == recount()
    state.apply_job("MODIFIED", job("a", 10, finished=True))
    state.apply_job("DELETED", job("b", 11, uid="other"))
    assert state.running == {} == recount() and state.running_total == 0
    state.put_job("c", {"metadata": {"name": "job-c", "namespace": "ns", "labels": {LABEL_EXPORT_UID: "c"}}})
    state.replace([], "20", [job("d", 19)], "20")  # a LIST starts the count over
    assert state.running == {"ns": 1} == recount()
