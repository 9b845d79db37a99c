"""The output contract: safe path resolution, atomic publish, hashing while streaming, cleanup on failure."""

from __future__ import annotations

import errno
import hashlib
import json
import os

import pytest

from exportjob.worker.errors import ExportFailure, Reason
from exportjob.worker.output import (
    WRITE_BEHIND_BYTES,
    WRITE_BUFFER_BYTES,
    AtomicOutput,
    WriteBehind,
    write_failure,
)


def files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_writes_atomically_with_size_and_sha256(tmp_path):
    with AtomicOutput(str(tmp_path), "reports/2024/orders.csv") as output:
        output.sink.write(b"a,b\r\n")
        output.sink.write(memoryview(b"1,2\r\n"))
        assert not (tmp_path / "reports/2024/orders.csv").exists()
        parts = [p.name for p in (tmp_path / "reports/2024").iterdir()]
        assert len(parts) == 1 and parts[0].startswith("orders.csv.") and parts[0].endswith(".part")
        info = output.commit()
        manifest = output.write_manifest({"rows": 1})
    final = tmp_path / "reports/2024/orders.csv"
    assert final.read_bytes() == b"a,b\r\n1,2\r\n"
    assert info.bytes == 10 and info.sha256 == hashlib.sha256(b"a,b\r\n1,2\r\n").hexdigest()
    assert manifest == "reports/2024/orders.csv.manifest.json"
    assert json.loads((tmp_path / manifest).read_text()) == {"rows": 1}
    assert files(tmp_path) == [
        "reports",
        "reports/2024",
        "reports/2024/orders.csv",
        "reports/2024/orders.csv.manifest.json",
    ]


def test_replaces_an_existing_file(tmp_path):
    (tmp_path / "x.csv").write_text("old")
    with AtomicOutput(str(tmp_path), "x.csv") as output:
        output.sink.write(b"new")
        output.commit()
    assert (tmp_path / "x.csv").read_text() == "new"


def test_exception_removes_the_partial_file(tmp_path):
    with pytest.raises(RuntimeError), AtomicOutput(str(tmp_path), "d/x.csv") as output:
        output.sink.write(b"partial")
        raise RuntimeError("boom")
    assert files(tmp_path) == ["d"]


def test_leaving_without_commit_publishes_nothing(tmp_path):
    with AtomicOutput(str(tmp_path), "x.csv") as output:
        output.sink.write(b"data")
    assert files(tmp_path) == []


@pytest.mark.parametrize("path", ["/etc/passwd", "../x.csv", "a/../../x.csv", "a/", "", "a\\b"])
def test_lexically_unsafe_paths_are_refused(tmp_path, path):
    with pytest.raises(ExportFailure) as caught, AtomicOutput(str(tmp_path / "root"), path):
        pass
    assert caught.value.reason == Reason.OUTPUT_PATH_INVALID and not caught.value.retryable


def test_symlinked_parent_escaping_the_root_is_refused_and_nothing_is_created_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(ExportFailure) as caught, AtomicOutput(str(root), "link/sub/x.csv"):
        pass
    assert caught.value.reason == Reason.OUTPUT_PATH_INVALID
    assert "outside the output volume" in caught.value.message
    assert list(outside.iterdir()) == []


def test_symlinked_parent_escaping_through_dotdot_target_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "up").symlink_to("../..")
    with pytest.raises(ExportFailure, match="outside the output volume"), AtomicOutput(str(root), "a/up/x.csv"):
        pass


def test_symlinked_parent_inside_the_root_is_followed(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to("real")
    with AtomicOutput(str(root), "alias/x.csv") as output:
        output.sink.write(b"ok")
        output.commit()
    assert (root / "real" / "x.csv").read_bytes() == b"ok"


def test_symlink_as_final_name_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    target = tmp_path / "target.csv"
    target.write_text("keep")
    (root / "x.csv").symlink_to(target)
    with pytest.raises(ExportFailure, match="existing symlink"), AtomicOutput(str(root), "x.csv"):
        pass
    assert target.read_text() == "keep"


def test_directory_as_final_name_or_file_as_parent_is_refused(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ExportFailure, match="existing directory"), AtomicOutput(str(tmp_path), "dir.csv"):
        pass
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportFailure) as caught, AtomicOutput(str(tmp_path), "file/x.csv"):
        pass
    assert caught.value.reason == Reason.OUTPUT_PATH_INVALID


def test_very_long_file_name_is_a_clear_failure(tmp_path):
    with pytest.raises(ExportFailure) as caught, AtomicOutput(str(tmp_path), "x" * 300 + ".csv"):
        pass
    assert caught.value.reason == Reason.OUTPUT_PATH_INVALID


class FullFile:
    """A file object whose writes fail like a full disk after `room` bytes."""

    def __init__(self, real, room: int, code: int = errno.ENOSPC) -> None:
        self._real, self._room, self._code = real, room, code

    def write(self, data):
        if len(data) > self._room:
            raise OSError(self._code, os.strerror(self._code))
        self._room -= len(data)
        return self._real.write(data)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.mark.parametrize(
    "code, reason, retryable",
    [
        (errno.ENOSPC, Reason.DISK_FULL, True),
        (errno.EDQUOT, Reason.DISK_FULL, True),
        (errno.EIO, Reason.WRITE_FAILED, True),
        (errno.EROFS, Reason.WRITE_FAILED, False),
    ],
)
def test_write_errors_become_failures_and_remove_the_partial_file(tmp_path, code, reason, retryable):
    with pytest.raises(ExportFailure) as caught, AtomicOutput(str(tmp_path), "x.csv") as output:
        output.sink._file = FullFile(output.sink._file, room=5, code=code)
        output.sink.write(b"12345")
        output.sink.write(b"6789")
    failure = caught.value
    assert (failure.reason, failure.retryable) == (reason, retryable)
    assert "x.csv after 5 bytes" in failure.message and "partial file was removed" in failure.message
    assert files(tmp_path) == []


def test_write_failure_message_names_the_cause():
    failure = write_failure(OSError(errno.ENOSPC, "No space left on device"), "a/b.csv", 42)
    assert failure.reason == Reason.DISK_FULL
    assert "No space left on device" in failure.message and "a/b.csv after 42 bytes" in failure.message


def test_parts_of_killed_attempts_are_removed_but_live_ones_kept(tmp_path):
    import fcntl
    import os
    import time

    from exportjob.worker.output import AtomicOutput

    (tmp_path / "r").mkdir()
    abandoned = tmp_path / "r" / "a.csv.0badc0de.part"
    live = tmp_path / "r" / "a.csv.1234abcd.part"
    other = tmp_path / "r" / "b.csv.0badc0de.part"
    for part in (abandoned, live, other):
        part.write_bytes(b"partial")
    old = time.time() - 3600
    for part in (abandoned, live, other):
        os.utime(part, (old, old))
    with open(live, "rb") as writer:  # a live writer of the same target holds its lock, however old
        fcntl.flock(writer, fcntl.LOCK_EX)
        with AtomicOutput(str(tmp_path), "r/a.csv") as output:
            output.sink.write(b"x\r\n")
            output.commit()
    assert not abandoned.exists() and live.exists() and other.exists()
    assert (tmp_path / "r" / "a.csv").read_bytes() == b"x\r\n"


def test_a_successful_attempt_removes_its_predecessors_parts_at_once(tmp_path):
    import os
    import time

    from exportjob.worker.output import AtomicOutput

    (tmp_path / "r").mkdir()
    killed = tmp_path / "r" / "a.csv.0badc0de.part"  # fresh: a predecessor killed a moment ago
    killed.write_bytes(b"partial")
    os.utime(killed, (time.time() - 1, time.time() - 1))
    with AtomicOutput(str(tmp_path), "r/a.csv") as output:
        output.sink.write(b"x\r\n")
        assert killed.exists()  # only a successful attempt cleans up
        later = tmp_path / "r" / "a.csv.5ca1ab1e.part"  # started after this attempt: not a predecessor
        later.write_bytes(b"partial")
        os.utime(later, (time.time() + 5, time.time() + 5))  # file times are coarser than time.time()
        output.commit()
    assert not killed.exists() and later.exists()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["a.csv", "a.csv.5ca1ab1e.part"]


def test_write_behind_advises_what_the_previous_call_started_and_what_came_since():
    behind = WriteBehind(step=8, buffered=1)
    assert behind.advance(5) is None
    assert behind.advance(9) == (0, 8)  # start the writeback of [0, 8); byte 8 may still be in the buffer
    assert behind.advance(16) is None
    assert behind.advance(17) == (0, 16)  # drop [0, 8) (written back by now), start [8, 16)
    assert behind.advance(25) == (8, 16)  # drop [8, 16), start [16, 24)
    assert behind.advance(100) == (16, 83)  # one large write: everything up to what the buffer holds
    assert behind.advance(107) is None


def test_the_sink_writes_its_file_behind_itself_and_the_file_stays_whole(tmp_path, monkeypatch):
    advised: list[tuple[int, int, int]] = []
    real_fadvise = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        advised.append((fd, offset, length))
        real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    block = bytes(range(256)) * 4096  # 1 MiB
    with AtomicOutput(str(tmp_path), "big.csv") as output:
        for _ in range(40):
            output.sink.write(block)
        info = output.commit()
    assert (tmp_path / "big.csv").read_bytes() == block * 40
    assert info.bytes == 40 * len(block) and info.sha256 == hashlib.sha256(block * 40).hexdigest()
    ranges = [(offset, offset + length) for _, offset, length in advised]
    mib = len(block)
    assert ranges == [(0, 8 * mib), (0, 16 * mib), (8 * mib, 24 * mib), (16 * mib, 32 * mib)]
    assert len({fd for fd, _, _ in advised}) == 1


def test_a_file_system_refusing_the_advice_changes_nothing(tmp_path, monkeypatch):
    def refuse(fd: int, offset: int, length: int, advice: int) -> None:
        raise OSError(errno.EINVAL, "not here")

    monkeypatch.setattr(os, "posix_fadvise", refuse)
    with AtomicOutput(str(tmp_path), "out.csv") as output:
        output.sink.write(b"x" * (WRITE_BEHIND_BYTES + WRITE_BUFFER_BYTES + 1))
        info = output.commit()
    assert info.bytes == WRITE_BEHIND_BYTES + WRITE_BUFFER_BYTES + 1
    assert (tmp_path / "out.csv").stat().st_size == info.bytes
