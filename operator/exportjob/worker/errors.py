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

import json
import urllib.parse
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


REDACTED = "***"
_MIN_SECRET_LENGTH = 4


def encoded_forms(secret: str) -> set[str]:
    """Every form in which `secret` may appear in a message: raw, stripped, and as the usual encodings render it.

    repr() of str and bytes (escapes such as \\n, \\x00), JSON with and without ensure_ascii, URL
    percent-encoding (quote, quote_plus), each without the surrounding quotes, and each line of a
    multi-line secret. Forms shorter than 4 characters are left out (they would blank ordinary text).
    """
    forms: set[str] = set()
    for value in {secret, secret.strip()}:
        if not value:
            continue
        forms |= {
            value,
            repr(value)[1:-1],
            repr(value.encode("utf-8", "surrogatepass"))[2:-1],
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote(value),
            urllib.parse.quote_plus(value),
        }
        forms |= {line.strip() for line in value.splitlines()}
    return {form for form in forms if len(form) >= _MIN_SECRET_LENGTH}


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret, in any of its `encoded_forms`, by '***'.

    A last line of defence: messages are built not to contain secrets, but a
    server or library message may echo a connection string back, quoted or escaped.
    Longer forms are replaced first, so a form never survives half-replaced.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            forms |= encoded_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def redact_value(value: object, secrets: Iterable[str | None]) -> object:
    """`value` with `redact` applied to every string inside it (dicts, lists, tuples); other values as they are.

    Used on log fields *before* they are serialised, so that JSON escaping cannot hide a secret.
    """
    secrets = list(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(str(k), secrets): redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, secrets) for item in value]
    return value
