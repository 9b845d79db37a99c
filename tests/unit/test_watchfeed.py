"""The worker-Job watch feed: resuming from the last resourceVersion, starting over after 410, errors."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from exportjob.controller.watchfeed import Gone, WatchFeed, take


def event(kind: str, rv: str, name: str = "j") -> dict[str, Any]:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": rv}}}


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[tuple[str | None, str]] = []
        self.restarts = 0

    def deliver(self, kind: str | None, obj: dict[str, Any]) -> None:
        self.delivered.append((kind, obj["metadata"]["resourceVersion"]))

    def restart(self) -> None:
        self.restarts += 1


def test_objects_are_delivered_in_order_and_bookmarks_only_move_the_resource_version() -> None:
    seen = Recorder()
    events = [event("ADDED", "5"), event("MODIFIED", "7"), event("BOOKMARK", "9"), event("DELETED", "8", "k")]
    assert [take(e, seen.deliver) for e in events] == ["5", "7", "9", "8"]
    assert seen.delivered == [("ADDED", "5"), ("MODIFIED", "7"), ("DELETED", "8")]


def test_error_events_raise_gone_for_410_and_api_errors_otherwise() -> None:
    seen = Recorder()
    with pytest.raises(Gone):
        take({"type": "ERROR", "object": {"code": 410, "message": "too old"}}, seen.deliver)
    with pytest.raises(ApiException) as raised:
        take({"type": "ERROR", "object": {"code": 500, "message": "boom"}}, seen.deliver)
    assert raised.value.status == 500


class ScriptedWatch:
    """Each call answers with the next script entry: a list of events, or an exception to raise."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[tuple[str | None, str, str | None]] = []

    def __call__(self, namespace: str | None, selector: str, resource_version: str | None):
        self.calls.append((namespace, selector, resource_version))
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return iter(answer)


def feed(watch: ScriptedWatch, seen: Recorder) -> WatchFeed:
    return WatchFeed(watch, "team-a", "!finished", seen.deliver, seen.restart)


def test_each_watch_resumes_where_the_last_one_ended() -> None:
    seen = Recorder()
    watch = ScriptedWatch([event("ADDED", "5")], [event("MODIFIED", "6"), event("BOOKMARK", "8")], [], [])
    f = feed(watch, seen)
    for _ in range(4):
        f.step()
    assert [call[2] for call in watch.calls] == [None, "5", "8", "8"]  # a quiet watch: resume at the same place
    assert watch.calls[0][:2] == ("team-a", "!finished")
    assert seen.restarts == 0


@pytest.mark.parametrize("expired", [Gone("too old"), ApiException(status=410, reason="Gone")])
def test_an_expired_resource_version_starts_over_and_asks_for_a_relist(expired: Exception) -> None:
    seen = Recorder()
    watch = ScriptedWatch([event("ADDED", "5")], expired, [event("ADDED", "40")])
    f = feed(watch, seen)
    f.step()
    f.step()
    assert seen.restarts == 1 and f.resume_from is None
    f.step()
    assert [call[2] for call in watch.calls] == [None, "5", None]
    assert seen.delivered == [("ADDED", "5"), ("ADDED", "40")]


def test_other_failures_propagate_and_keep_the_resource_version() -> None:
    seen = Recorder()
    watch = ScriptedWatch([event("ADDED", "5")], ApiException(status=500, reason="boom"), ConnectionError("refused"))
    f = feed(watch, seen)
    f.step()
    with pytest.raises(ApiException):
        f.step()
    with pytest.raises(ConnectionError):
        f.step()
    assert f.resume_from == "5" and seen.restarts == 0


def test_a_failure_halfway_resumes_after_the_last_event_taken() -> None:
    seen = Recorder()

    def broken(namespace: str | None, selector: str, resource_version: str | None):
        yield event("MODIFIED", "9")
        raise ConnectionError("reset")

    f = WatchFeed(broken, None, "!finished", seen.deliver, seen.restart)
    with pytest.raises(ConnectionError):
        f.step()
    assert seen.delivered == [("MODIFIED", "9")]
    assert f.resume_from == "9"
