"""Polling helpers for tests and the demo: wait for a condition with a timeout.

Used by ``tests/cluster`` (and the operator's cluster tests) and by the demo, so
that assertions on the dev cluster poll real API objects instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["condition_status", "wait_for"]

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 30.0, interval: float = 0.2, description: str = "condition") -> T:
    """Call ``probe`` until it returns a truthy value and return that value.

    Raises ``TimeoutError`` naming ``description`` and the last value (or the last
    exception) when ``timeout`` seconds pass.  Exceptions from ``probe`` count as
    "not yet" (API objects that do not exist yet, transient connection errors).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {description}; last: {last!r}")
        time.sleep(interval)


def condition_status(obj: dict[str, Any], ctype: str) -> str | None:
    """``status`` ("True"/"False"/"Unknown") of condition ``ctype`` of an API object, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond.get("status")
    return None
