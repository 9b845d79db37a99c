"""Every CamelCase reason an ExportJob can show, in one enum.

The worker puts a failure reason into its result JSON, the operator copies it
onto the status condition, the Warning event and the `reason` label of
`exportjob_failures_total`; the operator adds the reasons only it can observe
(a Job past its deadline, a crashed worker, a missing prerequisite). They all
come from here, so a reason exists once and the metric label has a bounded set
of values: anything a worker reports that is not a member becomes
`WorkerCrashed` (see `failure_reason`). Pure, standard library only (the worker
imports it at start-up).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # --- failures reported by the worker (result JSON) ---------------------------
    INVALID_SPEC = "InvalidSpec"  # the spec is invalid, or names a column the source does not have
    MISSING_CREDENTIALS = "MissingCredentials"  # the secret's environment variable is absent or empty
    INVALID_CREDENTIALS = "InvalidCredentials"  # the DSN does not parse, or the server rejects the login
    SOURCE_UNREACHABLE = "SourceUnreachable"  # connection refused, DNS, reset, HTTP 5xx/429/408: retryable
    SOURCE_TIMEOUT = "SourceTimeout"  # statement_timeout or HTTP read timeout: retryable
    SOURCE_REJECTED = "SourceRejected"  # HTTP 4xx (other than 408/429): permanent
    EGRESS_DENIED = "EgressDenied"  # the HTTP source's address is refused by the egress policy: permanent
    QUERY_FAILED = "QueryFailed"  # PostgreSQL rejected the query: permanent, with the server's message
    MALFORMED_SOURCE = "MalformedSource"  # a record that does not parse, named by line or byte offset
    UNENCODABLE_TEXT = "UnencodableText"  # a character the chosen CSV encoding cannot represent
    OUTPUT_PATH_INVALID = "OutputPathInvalid"  # absolute, '..', a symlink escaping the root, a directory
    DISK_FULL = "DiskFull"  # ENOSPC/EDQUOT while writing: retryable (space may be freed); partial file removed
    WRITE_FAILED = "WriteFailed"  # any other write error (EIO, EROFS, EACCES...): retryable; partial file removed
    INTERRUPTED = "Interrupted"  # SIGTERM/SIGINT during the export: retryable; partial file removed
    WORKER_CRASHED = "WorkerCrashed"  # an unexpected exception, a signal, OOM: retryable
    # --- failures only the operator observes --------------------------------------
    DEADLINE_EXCEEDED = "DeadlineExceeded"  # the Job's activeDeadlineSeconds passed
    JOB_NAME_CONFLICT = "JobNameConflict"  # a Job of the worker's name exists and belongs to something else
    # --- why an export is not admitted (condition Admitted=False; holds no slot) ---
    QUEUED = "Queued"  # ready, waiting for a free slot
    CLAIM_NOT_FOUND = "ClaimNotFound"  # the PersistentVolumeClaim does not exist
    SECRET_NOT_FOUND = "SecretNotFound"  # a referenced Secret or key does not exist
    SERVICE_ACCOUNT_NOT_FOUND = "ServiceAccountNotFound"  # the worker's ServiceAccount does not exist
    # --- progress -----------------------------------------------------------------------
    ADMITTED = "Admitted"
    SUCCEEDED = "Succeeded"


NOT_FAILURES = frozenset(
    {
        Reason.QUEUED,
        Reason.CLAIM_NOT_FOUND,
        Reason.SECRET_NOT_FOUND,
        Reason.SERVICE_ACCOUNT_NOT_FOUND,
        Reason.ADMITTED,
        Reason.SUCCEEDED,
    }
)
# Every reason a Failed condition can carry (the `reason` label values of exportjob_failures_total).
FAILURE_REASONS: tuple[Reason, ...] = tuple(sorted(r for r in Reason if r not in NOT_FAILURES))


def failure_reason(value: object) -> Reason:
    """The member named by a worker's result (untrusted input); WorkerCrashed for anything else."""
    try:
        return Reason(str(value))
    except ValueError:
        return Reason.WORKER_CRASHED
