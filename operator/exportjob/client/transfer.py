"""Receive one file over HTTP with resume (Range), verify its SHA-256, and only then give it its name.

I/O on local files and a stream only; the HTTP request itself is a callable
(`Fetch`), so this runs unchanged against the API server's Pod proxy (the
CLI) and against a local server (tests). Memory stays flat: the body is read in
fixed-size chunks, hashed and written as it arrives.

A download to FILE is written to `FILE.part`; an interrupted one (connection
lost: retried at once from the last byte; Ctrl-C or a crash: the `.part` file
stays) continues from where it stopped, with `Range: bytes=N-` and `If-Range`.
The hash covers the whole file (the `.part` prefix is re-read on resume). A
checksum mismatch deletes the `.part` file: nothing is left under FILE.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
DEFAULT_ATTEMPTS = 5


class TransferError(Exception):
    """The download failed; the message says why."""


class ChecksumMismatch(TransferError):
    """The received bytes do not hash to the SHA-256 on the ExportJob status."""


class Sha256:
    """A SHA-256 that can start over (when the server sends the whole file again)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def reset(self) -> None:
        self._hash = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass
class Response:
    """A streaming HTTP response: status, headers (lower-case names) and the body in chunks."""

    status: int
    headers: Mapping[str, str]
    chunks: Iterator[bytes]
    close: Callable[[], None] = lambda: None


# fetch(offset, etag) -> the response to `GET` with `Range: bytes=<offset>-` (when offset > 0) and `If-Range: etag`.
Fetch = Callable[[int, "str | None"], Response]
Progress = Callable[[int, "int | None"], None]
# Exceptions that mean "the connection broke": retried from the last byte received.
RETRYABLE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


def _total(response: Response, offset: int) -> int | None:
    if response.status == 206:
        content_range = response.headers.get("content-range", "")
        unit_range, _, total = content_range.partition("/")
        first = unit_range.removeprefix("bytes ").split("-", 1)[0]
        if not first.isdigit() or int(first) != offset:
            raise TransferError(f"the server answered a different range ({content_range!r}) than asked (from {offset})")
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def receive(
    fetch: Fetch,
    sink: BinaryIO,
    hasher: Sha256,
    *,
    offset: int = 0,
    progress: Progress | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    retryable: tuple[type[BaseException], ...] = RETRYABLE,
) -> int:
    """Append the body to `sink` (which holds `offset` bytes already hashed into `hasher`); return the size."""
    etag: str | None = None
    failures = 0
    while True:
        try:
            response = fetch(offset, etag)
        except retryable as error:
            failures += 1
            if failures >= attempts:
                raise TransferError(f"the connection failed {failures} times; last: {error}") from None
            continue
        try:
            if response.status == 416 and offset > 0:
                content_range = response.headers.get("content-range", "")
                if content_range == f"bytes */{offset}":
                    return offset  # the .part file already holds everything
                raise TransferError(f"the file on the claim is smaller than the partial download ({content_range})")
            if response.status == 200 and offset > 0:
                if not sink.seekable():
                    raise TransferError("the file changed on the server during the download; start again")
                sink.seek(0)
                sink.truncate()
                offset = 0
                hasher.reset()  # the whole file comes again
            elif response.status not in (200, 206):
                body = b"".join(response.chunks)[:500].decode("utf-8", "replace").strip()
                raise TransferError(f"HTTP {response.status} from the reader Pod: {body}")
            etag = response.headers.get("etag") or etag
            total = _total(response, offset)
            if progress:
                progress(offset, total)
            try:
                for chunk in response.chunks:
                    sink.write(chunk)
                    hasher.update(chunk)
                    offset += len(chunk)
                    if progress:
                        progress(offset, total)
                        failures = 0
            except retryable as error:
                failures += 1
                if failures >= attempts:
                    raise TransferError(f"the connection broke {failures} times; last: {error}") from None
                continue
            if total is None or offset >= total:
                return offset
            failures += 1  # a short body: ask for the rest
            if failures >= attempts:
                raise TransferError(f"the body ended early {failures} times (at byte {offset} of {total})")
        finally:
            response.close()


def part_path(destination: Path) -> Path:
    return destination.with_name(destination.name + ".part")


def download_to_file(
    fetch: Fetch,
    destination: Path,
    expected_sha256: str,
    *,
    expected_size: int | None = None,
    progress: Progress | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
) -> int:
    """Download into `destination` through `destination.part` (resumed if present); verify, then rename."""
    part = part_path(destination)
    hasher = Sha256()
    offset = 0
    if part.exists():
        offset = part.stat().st_size
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
    with open(part, "r+b" if offset else "wb") as sink:
        if offset:
            while block := sink.read(CHUNK):  # re-hash what an earlier run received
                hasher.update(block)
            sink.seek(offset)
        size = receive(fetch, sink, hasher, offset=offset, progress=progress, attempts=attempts)
        sink.flush()
        os.fsync(sink.fileno())
    digest = hasher.hexdigest()
    if digest != expected_sha256:
        part.unlink()
        raise ChecksumMismatch(
            f"sha256 mismatch: received {digest}, the ExportJob status says {expected_sha256}; "
            f"{destination} was not written"
        )
    os.replace(part, destination)
    return size


def download_to_stream(
    fetch: Fetch,
    sink: BinaryIO,
    expected_sha256: str,
    *,
    progress: Progress | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
) -> int:
    """Download to a stream (stdout): resumes within this run only; a mismatch is reported after the fact."""
    hasher = Sha256()
    size = receive(fetch, sink, hasher, progress=progress, attempts=attempts)
    sink.flush()
    if hasher.hexdigest() != expected_sha256:
        raise ChecksumMismatch(
            f"sha256 mismatch: received {hasher.hexdigest()}, the ExportJob status says {expected_sha256}; "
            "discard what was written to stdout"
        )
    return size
