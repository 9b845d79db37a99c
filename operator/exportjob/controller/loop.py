"""The reconcile loop's thread: wake-ups, back-off after failures, and leader gating.

Kopf's handlers call `wake()`; the thread then runs one pass of the
reconciler, at the latest every `interval` seconds. Passes start at most every
`min_gap` seconds: an event after a quiet spell is handled at once, while a
burst of events (every write and every Job status change is one) is handled a
batch per pass rather than a pass per event. A failing pass is retried
with exponential back-off (1, 2, 4 … 30 s) and the next one starts from a full
re-list. With leader election, passes run only while this replica holds the
Lease; whenever it (re)gains the lead, the first pass re-lists, because a
standby's picture may be older than the last leader's writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from exportjob.controller.leader import LeaderElector
from exportjob.controller.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


class Pass(Protocol):
    def reconcile_once(self) -> None: ...
    def invalidate(self) -> None: ...  # the next pass must start from a full re-list
    def stand_by(self) -> None: ...  # not leading: report no levels of our own


class LoopRunner:
    def __init__(
        self,
        target: Pass,
        *,
        interval: float,
        metrics: Metrics,
        leader: LeaderElector | None = None,
        renew_every: float = 5.0,
        min_gap: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.interval = interval
        self.metrics = metrics
        self.leader = leader
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False
        self.renew_every = renew_every
        self.min_gap = min_gap
        self._last_pass = float("-inf")
        self.monotonic = monotonic
        self._next_renewal = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current pass, then release the Lease so a standby takes over at once."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.leader is not None and self._leading:
            try:
                self.leader.release()
            except Exception:
                log.exception("could not release the leader Lease; a standby takes over when it expires")

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            delay = self.interval if failures == 0 else min(2.0**failures, MAX_BACKOFF_SECONDS)
            self._wake.wait(timeout=delay)
            early = self._last_pass + self.min_gap - self.monotonic()
            if early > 0:  # the events of the next `early` seconds join this pass
                self._stopping.wait(early)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._last_pass = self.monotonic()
            try:
                if self._may_reconcile():
                    self.target.reconcile_once()
                failures = 0
            except Exception:  # the loop must survive API hiccups; the next pass re-lists
                failures += 1
                self.target.invalidate()
                log.exception("reconcile pass failed", extra={"consecutive_failures": failures})

    def _may_reconcile(self) -> bool:
        """Without leader election always; with it, while the Lease is ours (renewed every `renew_every` s).

        Between renewals the holder acts without asking again: a standby takes
        over only after the Lease has gone unrenewed for its whole duration,
        which is three renewal periods. A standby asks once per period too.
        """
        if self.leader is None:
            return True
        if self.monotonic() < self._next_renewal:  # a standby, too, asks once per period, not per event
            if not self._leading:
                self.target.stand_by()
            return self._leading
        leading = self.leader.lead()
        self._next_renewal = self.monotonic() + self.renew_every
        self.metrics.leader.set(1 if leading else 0)
        if leading and not self._leading:
            self.target.invalidate()
        elif not leading:
            self.target.stand_by()
        self._leading = leading
        return leading
