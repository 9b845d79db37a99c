"""The CSV formula-injection guard: which text cells a spreadsheet could evaluate, and how to neutralise them.

A cell whose text starts with `=`, `+`, `-`, `@`, tab or carriage return may be
evaluated as a formula by Excel, LibreOffice or Google Sheets (OWASP "CSV
Injection"). The guard prefixes such text with a single quote, which the
spreadsheet shows as text. Text that is a plain decimal number (`-12.50`,
`+3`, `1e-5`) is left alone: a spreadsheet reads it as the same number, so it
cannot carry a formula, and negative amounts stay numbers. Values that are
numbers (int, float, Decimal, PostgreSQL numeric types) are never touched.

Used by the CSV writer (Python rows) and by the PostgreSQL COPY path, which
applies the same rule server-side in SQL (`PG_*` below). Pure.
"""

from __future__ import annotations

import re

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE_PREFIX = "'"

# A plain number: optional sign, digits with an optional fraction (or a bare fraction), optional
# exponent; or a signed infinity/NaN as Python and PostgreSQL print floats and Decimals.
_NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)\Z", re.IGNORECASE)

# The same rule for PostgreSQL: first character code, and a POSIX regex for the numeric exemption.
PG_TRIGGER_CODES = tuple(ord(char) for char in TRIGGERS)
PG_NUMBER_REGEX = r"^[-+]?(([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?|inf|infinity|nan)$"  # use with ~* (no case)


def needs_escape(text: str) -> bool:
    return text.startswith(TRIGGERS) and _NUMBER.match(text) is None


def escape(text: str) -> str:
    """The text a spreadsheet will show as text: prefixed with a quote when it could be a formula."""
    return ESCAPE_PREFIX + text if needs_escape(text) else text
