"""Why an export failed, and which exit code says so.

Every expected failure of the worker is an `ExportFailure` carrying a CamelCase
`reason` (it becomes the ExportJob condition's reason), an actionable `message`
(never a secret: see `redact`) and whether retrying can help. The entry points
(`exportjob-worker`, `exportjob run`) turn it into the result JSON and an exit
code; the operator's Job fails fast on `PERMANENT_FAILURE` (podFailurePolicy
FailJob) and lets the Job's backoff retry `RETRYABLE_FAILURE` and crashes.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from exportjob.reasons import Reason

__all__ = ["ExportFailure", "Reason", "permanent", "redact", "retryable"]

# Exit codes of `exportjob-worker` and `exportjob run` (sysexits.h names).
SUCCESS = 0
CRASHED = 1  # an unexpected exception: a bug or the environment; the operator reports WorkerCrashed and retries
PERMANENT_FAILURE = 65  # EX_DATAERR: retrying cannot help (bad spec, bad SQL, malformed source, ...)
RETRYABLE_FAILURE = 75  # EX_TEMPFAIL: the same spec may succeed later (source down, timeout, disk full, ...)
USAGE_ERROR = 2  # `exportjob run` only: invalid command line or manifest


class ExportFailure(Exception):
    """An expected failure of one export: reason, actionable message, and whether a retry may succeed."""

    def __init__(self, reason: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable

    @property
    def exit_code(self) -> int:
        return RETRYABLE_FAILURE if self.retryable else PERMANENT_FAILURE

    def __repr__(self) -> str:
        return f"ExportFailure({self.reason!r}, {self.message!r}, retryable={self.retryable})"


def permanent(reason: str, message: str) -> ExportFailure:
    return ExportFailure(reason, message, retryable=False)


def retryable(reason: str, message: str) -> ExportFailure:
    return ExportFailure(reason, message, retryable=True)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret by '***'.

    A last line of defence: messages are built not to contain secrets, but a
    server or library message may echo a connection string back.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
