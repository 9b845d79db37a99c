"""The secrets an export may need, read once from the environment.

The operator's Job injects them from Kubernetes Secrets with `secretKeyRef`
(`EXPORTJOB_POSTGRES_DSN`, `EXPORTJOB_HTTP_BEARER_TOKEN`); `exportjob run` may
also take the DSN from `--dsn`. They are passed explicitly to the sources so
that nothing else reads the environment, and `secrets()` feeds `redact` so a
message can never echo one back. Never log this object.

Surrounding whitespace of every value is stripped: a Secret made with
`kubectl create secret --from-file` usually ends in a newline, which is never
part of a token or a DSN. Whatever remains must be usable as is; the HTTP
source checks the token with `token_problem` and fails with
`InvalidCredentials` naming the Secret key (never the value) otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

POSTGRES_DSN_ENV = "EXPORTJOB_POSTGRES_DSN"
HTTP_BEARER_TOKEN_ENV = "EXPORTJOB_HTTP_BEARER_TOKEN"


@dataclass(frozen=True)
class Credentials:
    postgres_dsn: str | None = field(default=None, repr=False)
    http_bearer_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if environ is None else environ
        return cls(
            postgres_dsn=(env.get(POSTGRES_DSN_ENV) or "").strip() or None,
            http_bearer_token=(env.get(HTTP_BEARER_TOKEN_ENV) or "").strip() or None,
        )

    def secrets(self) -> list[str]:
        """Every secret string, including the password inside the DSN, for `redact`."""
        found = [s for s in (self.postgres_dsn, self.http_bearer_token) if s]
        if self.postgres_dsn:
            try:
                from psycopg.conninfo import conninfo_to_dict

                password = conninfo_to_dict(self.postgres_dsn).get("password")
            except Exception:  # an unparsable DSN: the whole string is redacted already
                password = None
            if password:
                found.append(str(password))
        return found


def token_problem(token: str) -> str | None:
    """Why `token` cannot be sent as `Authorization: Bearer <token>`, or None. Never includes the token.

    Allowed: visible ASCII (0x21-0x7E), which covers RFC 6750's token68 and every JWT;
    a space, a control character or a non-ASCII character inside the value is refused.
    """
    for position, character in enumerate(token, start=1):
        if not 0x21 <= ord(character) <= 0x7E:
            kind = "a space" if character == " " else "a control character" if ord(character) < 0x80 else "non-ASCII"
            return f"character {position} of {len(token)} is {kind}; a bearer token must be visible ASCII"
    return None
