"""The output contract: a file appears under its final name complete, or not at all, inside the output root.

`AtomicOutput(root, path)`:
1. checks `path` lexically (`check_relative_path`: relative, no `..`), then walks
   it from the root one directory at a time with directory file descriptors,
   creating missing directories, and verifies each opened directory's real
   path is inside the real root (a symlink that stays inside is followed, one
   that escapes is refused; checking the opened descriptor leaves no race);
   an existing symlink or directory under the final name is refused;
2. removes `<name>.*.part` files of killed attempts (untouched for 10 min), then
   writes `<name>.<random>.part` (O_CREAT|O_EXCL|O_NOFOLLOW, so two attempts
   of the same export never share a file), holding an exclusive `flock` on it
   while it lives, counting bytes and computing the sha256 while streaming (`sink`), and starting
   the writeback of what it wrote every 8 MiB (`WriteBehind`), so that the commit's fsync is short;
3. `commit()`: fsync the file, rename it over the final name, fsync the directory,
   then remove the `.part` files its predecessors left (older than this attempt and
   locked by no live writer: a killed process's lock is gone with it);
4. on any exception before the commit, the `.part` file is removed; a write
   error is reported as `DiskFull` (ENOSPC, EDQUOT) or `WriteFailed`, saying the
   partial file was removed;
5. `commit(manifest_for=...)` publishes the data file and `<name>.manifest.json`
   together: both are written and fsynced under `.part` names first, then
   renamed (data, then manifest); if the second rename fails the data file is
   removed again, so the two appear together or not at all. The manifest is
   renamed last: its presence means the export is complete.
   (`commit()` + `write_manifest()` remain for callers without a manifest.)

Names are checked in bytes before anything is created: every directory
name at most 255 bytes, the file name at most `MAX_NAME_BYTES` (227), so that
`<name>.manifest.json.<8 hex>.part` still fits the 255-byte limit of Linux
file systems; a longer name fails with `OutputPathInvalid` up front.

Linux only (the real path of a directory descriptor is read from /proc/self/fd).
Used by `exportjob.worker.engine`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, cast

from exportjob.lightspec import check_relative_path

from .errors import ExportFailure, Reason, permanent, retryable

WRITE_BUFFER_BYTES = 1024 * 1024
WRITE_BEHIND_BYTES = 8 * 1024 * 1024  # the output file's writeback is started every this many bytes (WriteBehind)
MANIFEST_SUFFIX = ".manifest.json"
PART_SUFFIX_BYTES = len(".01234567.part")
NAME_MAX_BYTES = 255  # NAME_MAX of Linux file systems
MAX_NAME_BYTES = NAME_MAX_BYTES - len(MANIFEST_SUFFIX) - PART_SUFFIX_BYTES  # 227
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_PART_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_PERMANENT_WRITE_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENAMETOOLONG)


def write_failure(error: OSError, path: str, written: int | None = None) -> ExportFailure:
    """An OSError while writing `path`, as the failure to report (the caller removes the partial file)."""
    after = f" after {written} bytes" if written is not None else ""
    cause = os.strerror(error.errno) if error.errno else str(error)
    if error.errno in _DISK_FULL:
        return retryable(
            Reason.DISK_FULL,
            f"the output volume is full ({cause}) while writing {path}{after}; the partial file was removed. "
            "Free space or use a larger volume; the export is retried",
        )
    message = f"cannot write {path}{after}: {cause}; the partial file was removed"
    if error.errno in _PERMANENT_WRITE_ERRORS:
        return permanent(Reason.WRITE_FAILED, message)
    return retryable(Reason.WRITE_FAILED, message)


def _real_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_name_lengths(path: str, directories: list[str], name: str) -> None:
    """OutputPathInvalid unless every name fits in bytes (UTF-8), with room for the manifest and `.part` names."""
    for directory in directories:
        size = len(directory.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX_BYTES:
            raise permanent(
                Reason.OUTPUT_PATH_INVALID,
                f"output.path {path!r}: a directory name is {size} bytes in UTF-8; at most {NAME_MAX_BYTES}",
            )
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise permanent(
            Reason.OUTPUT_PATH_INVALID,
            f"output.path {path!r}: the file name is {size} bytes in UTF-8; at most {MAX_NAME_BYTES} "
            f"(the manifest '{MANIFEST_SUFFIX}' and temporary '.<random>.part' names must fit in {NAME_MAX_BYTES})",
        )


def open_parent_directory(root: str, path: str) -> tuple[int, str]:
    """A descriptor of the directory that will hold `path` (created as needed) and the file name.

    Raises OutputPathInvalid for unsafe paths and WriteFailed when a directory cannot be created.
    """
    try:
        check_relative_path(path)
    except ValueError as error:
        raise permanent(Reason.OUTPUT_PATH_INVALID, f"output.path {path!r}: {error}") from None
    *directories, name = [part for part in path.split("/") if part not in ("", ".")]
    check_name_lengths(path, directories, name)
    try:
        fd = os.open(root, _DIRECTORY_FLAGS)
    except OSError as error:
        raise retryable(Reason.WRITE_FAILED, f"cannot open the output root: {os.strerror(error.errno or 0)}") from None
    try:
        real_root = _real_path(fd)
        walked = []
        for directory in directories:
            walked.append(directory)
            shown = "/".join(walked)
            try:
                os.mkdir(directory, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as error:
                if error.errno == errno.ENAMETOOLONG:
                    raise permanent(
                        Reason.OUTPUT_PATH_INVALID, f"output.path {path!r}: {shown}: name too long"
                    ) from None
                raise write_failure(error, shown) from None
            try:
                child = os.open(directory, _DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as error:
                raise permanent(
                    Reason.OUTPUT_PATH_INVALID,
                    f"output.path {path!r}: {shown} is not a usable directory ({os.strerror(error.errno or 0)})",
                ) from None
            os.close(fd)
            fd = child
            if not _inside(_real_path(fd), real_root):
                raise permanent(
                    Reason.OUTPUT_PATH_INVALID,
                    f"output.path {path!r}: {shown} is a symlink leading outside the output volume",
                )
        for target, shown in ((name, path), (name + MANIFEST_SUFFIX, path + MANIFEST_SUFFIX)):
            try:
                existing = os.stat(target, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            except OSError as error:
                raise permanent(
                    Reason.OUTPUT_PATH_INVALID, f"output.path {shown!r}: {os.strerror(error.errno or 0)}"
                ) from None
            if existing is not None:
                if stat.S_ISLNK(existing.st_mode):
                    raise permanent(
                        Reason.OUTPUT_PATH_INVALID,
                        f"output.path {shown!r} is an existing symlink; refusing to replace it",
                    )
                if stat.S_ISDIR(existing.st_mode):
                    raise permanent(Reason.OUTPUT_PATH_INVALID, f"output.path {shown!r} is an existing directory")
        return fd, name
    except BaseException:
        os.close(fd)
        raise


class WriteBehind:
    """Which byte range of a file being appended to to hand to `posix_fadvise(DONTNEED)`, every `step` bytes.

    On Linux, DONTNEED on a range starts the writeback of its dirty pages (without waiting) and drops
    its pages that are clean. Each call covers the range the previous call started writing back (clean
    by now: dropped) and the bytes written since (writeback starts). So the disk writes while the export
    runs, and `commit()`'s fsync waits for about one step instead of the whole file (~0.08 s of the
    2 M-row PostgreSQL export here), and the file's page cache, which counts towards the Pod's memory
    limit, stays around two steps instead of the file's size.
    Bytes still in the `BufferedWriter` (`buffered`) are not the kernel's yet: ranges end before them.
    """

    def __init__(self, step: int, buffered: int) -> None:
        self._step = step
        self._buffered = buffered
        self._from = 0  # start of the range the previous call started writing back
        self._kicked = 0  # end of that range
        self._next = step + buffered

    def advance(self, written: int) -> tuple[int, int] | None:
        """(offset, length) to advise once `written` bytes went into the buffered file, else None."""
        if written < self._next:
            return None
        end = written - self._buffered
        offset, self._from, self._kicked = self._from, self._kicked, end
        self._next = written + self._step
        return offset, end - offset


class HashingSink:
    """A binary sink that counts bytes and updates a sha256 as data passes to the file, and writes the
    file behind itself (`WriteBehind`)."""

    def __init__(self, file: io.BufferedWriter, path: str) -> None:
        self._file = file
        self._path = path
        self._hash = hashlib.sha256()
        self._behind = WriteBehind(WRITE_BEHIND_BYTES, WRITE_BUFFER_BYTES)
        self.bytes = 0

    def write(self, data: Any) -> int:
        self._hash.update(data)
        try:
            self._file.write(data)
        except OSError as error:
            raise write_failure(error, self._path, self.bytes) from None
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        self.bytes += size
        advice = self._behind.advance(self.bytes)
        if advice is not None:
            try:
                os.posix_fadvise(self._file.fileno(), advice[0], advice[1], os.POSIX_FADV_DONTNEED)
            except OSError:  # advice only: a file system that refuses it just keeps its pages until the fsync
                pass
        return size

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as error:
            raise write_failure(error, self._path, self.bytes) from None

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _SpillFile(io.RawIOBase):
    """A scratch file whose OS errors are reported as the output's write failures (ENOSPC: DiskFull)."""

    def __init__(self, file: BinaryIO, path: str) -> None:
        super().__init__()
        self._file = file
        self._path = path

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as error:
            raise write_failure(error, self._path) from None

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._file.seek(offset, whence)
        except OSError as error:
            raise write_failure(error, self._path) from None

    def fileno(self) -> int:  # a PostgreSQL range process writes into the scratch file through this descriptor
        return self._file.fileno()

    def failure(self, error: OSError) -> ExportFailure:
        """How a write error on this file (e.g. a range process's) is reported."""
        return write_failure(error, self._path)

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True)
class OutputInfo:
    path: str
    bytes: int
    sha256: str


class AtomicOutput:
    """Context manager: `sink` to write, `commit()` to publish; anything else leaves no file behind."""

    def __init__(self, root: str, path: str) -> None:
        self.root = root
        self.path = path
        self._dir_fd: int | None = None
        self._name = ""
        self._part = ""
        self._file: io.BufferedWriter | None = None
        self._sink: HashingSink | None = None
        self._committed = False
        self.manifest_path: str | None = None
        self._started = 0.0

    def __enter__(self) -> AtomicOutput:
        self._started = time.time()
        self._dir_fd, self._name = open_parent_directory(self.root, self.path)
        try:
            remove_abandoned_parts(self._dir_fd, self._name)
            self._part = self._part_name(self._name)
            try:
                fd = os.open(self._part, _PART_FLAGS, 0o644, dir_fd=self._dir_fd)
            except OSError as error:
                if error.errno == errno.ENAMETOOLONG:
                    raise permanent(
                        Reason.OUTPUT_PATH_INVALID, f"output.path {self.path!r}: file name too long"
                    ) from None
                raise write_failure(error, self.path) from None
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fresh file: never contended; marks it live
            self._file = io.BufferedWriter(io.FileIO(fd, "wb"), WRITE_BUFFER_BYTES)
            self._sink = HashingSink(self._file, self.path)
        except BaseException:
            self._cleanup()
            raise
        return self

    @staticmethod
    def _part_name(name: str) -> str:
        return f"{name}.{secrets.token_hex(4)}.part"  # fits: check_name_lengths left room for the suffix

    @property
    def sink(self) -> HashingSink:
        if self._sink is None:
            raise RuntimeError("AtomicOutput used outside its context")
        return self._sink

    def spill_file(self) -> BinaryIO:
        """An anonymous scratch file beside the output (same volume, removed when closed), for data that is
        appended to the sink later (parallel PostgreSQL ranges). Write errors become `write_failure`s."""
        assert self._dir_fd is not None
        try:
            try:
                fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=self._dir_fd)
            except OSError as error:
                if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                name = self._part_name(self._name + ".spill")  # no O_TMPFILE here: a named file, unlinked at once
                fd = os.open(name, (_PART_FLAGS & ~os.O_WRONLY) | os.O_RDWR, 0o600, dir_fd=self._dir_fd)
                _unlink_quietly(name, self._dir_fd)
        except OSError as error:
            raise write_failure(error, self.path) from None
        return cast(BinaryIO, _SpillFile(open(fd, "w+b", buffering=WRITE_BUFFER_BYTES), self.path))

    def commit(self, manifest_for: Callable[[OutputInfo], dict[str, Any]] | None = None) -> OutputInfo:
        """fsync, rename over the final name, fsync the directory; return size and sha256.

        With `manifest_for`, the manifest it builds from the OutputInfo is published together with
        the data file (see the module docstring, step 5); its relative path is then `manifest_path`.
        """
        assert self._file is not None and self._sink is not None and self._dir_fd is not None
        sink = self._sink
        sink.flush()
        try:
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as error:
            raise write_failure(error, self.path, sink.bytes) from None
        info = OutputInfo(self.path, sink.bytes, sink.hexdigest())
        manifest_part = ""
        if manifest_for is not None:
            manifest_part = self._write_part(self._name + MANIFEST_SUFFIX, manifest_for(info))
        try:
            os.rename(self._part, self._name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            self._committed = True
        except OSError as error:
            if manifest_part:
                _unlink_quietly(manifest_part, self._dir_fd)
            raise write_failure(error, self.path, sink.bytes) from None
        if manifest_part:
            try:
                os.rename(manifest_part, self._name + MANIFEST_SUFFIX, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            except OSError as error:  # never leave the data file without its manifest
                _unlink_quietly(manifest_part, self._dir_fd)
                _unlink_quietly(self._name, self._dir_fd)
                raise write_failure(error, self.path + MANIFEST_SUFFIX) from None
            self.manifest_path = self.path + MANIFEST_SUFFIX
        try:
            os.fsync(self._dir_fd)
        except OSError as error:
            raise write_failure(error, self.path, sink.bytes) from None
        # attempts never overlap (the Job's podReplacementPolicy: Failed), so what an earlier,
        # killed attempt left goes now rather than when the next export of this path starts
        remove_abandoned_parts(self._dir_fd, self._name, max_age=0, before=self._started)
        return info

    def _write_part(self, name: str, manifest: dict[str, Any]) -> str:
        """Write and fsync `manifest` as JSON under a fresh `.part` name beside `name`; return that name."""
        assert self._dir_fd is not None
        part = self._part_name(name)
        data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        try:
            fd = os.open(part, _PART_FLAGS, 0o644, dir_fd=self._dir_fd)
            try:
                with io.FileIO(fd, "wb") as file:
                    file.write(data)
                    os.fsync(fd)
            except BaseException:
                _unlink_quietly(part, self._dir_fd)
                raise
        except OSError as error:
            raise write_failure(error, self.path + MANIFEST_SUFFIX) from None
        return part

    def write_manifest(self, manifest: dict[str, Any]) -> str:
        """Write `<name>.manifest.json` atomically beside the committed file; return its relative path."""
        assert self._dir_fd is not None and self._committed
        name = self._name + MANIFEST_SUFFIX
        relative = self.path + MANIFEST_SUFFIX
        part = self._part_name(name)
        data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        try:
            fd = os.open(part, _PART_FLAGS, 0o644, dir_fd=self._dir_fd)
            try:
                with io.FileIO(fd, "wb") as file:
                    file.write(data)
                    os.fsync(fd)
                os.rename(part, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            except BaseException:
                _unlink_quietly(part, self._dir_fd)
                raise
            os.fsync(self._dir_fd)
        except OSError as error:
            raise write_failure(error, relative) from None
        return relative

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except OSError:
                pass  # e.g. ENOSPC again while flushing the buffer: the file is removed below anyway
        if self._dir_fd is not None:
            if self._part and not self._committed:
                _unlink_quietly(self._part, self._dir_fd)
            os.close(self._dir_fd)
            self._dir_fd = None


# A `.part` file nobody has written to for this long was left by a killed attempt
# (SIGKILL, OOM kill: no cleanup ran). A live writer touches its file constantly.
ABANDONED_PART_SECONDS = 600


def remove_abandoned_parts(
    dir_fd: int, name: str, max_age: float = ABANDONED_PART_SECONDS, before: float | None = None
) -> int:
    """Remove `<name>.<8 hex>.part` files of dead writers; return how many.

    A file goes when it was last written more than `max_age` seconds before `before`
    (default: now) and no process holds its `flock` (every live writer does; the kernel
    drops the lock of a killed one). Errors are ignored: this is housekeeping.
    """
    pattern = re.compile(re.escape(name) + r"\.[0-9a-f]{8}\.part")
    oldest_allowed = (time.time() if before is None else before) - max_age
    removed = 0
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if not (pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= oldest_allowed:
                    continue
                fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            else:
                _unlink_quietly(entry.name, dir_fd)
                removed += 1
            finally:
                os.close(fd)
    return removed


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
