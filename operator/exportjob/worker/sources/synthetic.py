"""The synthetic source: realistic, typed, deterministic rows; the demo and benchmark source.

Columns and Python types:

| column    | type      | example                                  |
|-----------|-----------|------------------------------------------|
| id        | int       | 1, 2, 3 ... (the row number)             |
| uuid      | str       | `5f0c2a7e-91b3-4c1d-a6e2-00000000002a` (unique: the id is its last 12 hex digits) |
| name      | str       | `Ada Okafor`                             |
| email     | str       | `ada.okafor17@example.net`               |
| amount    | Decimal   | `129.90`, `-15.00` (about 8 % are negative: refunds; 2 decimals) |
| timestamp | str       | `2024-03-05T12:34:56Z` (ISO 8601 UTC, non-decreasing) |
| flag      | bool      | True / False                             |
| category  | str       | `books`                                  |

The same (records, seed) always yields the same rows, on any machine: all
randomness comes from `random.Random(seed)` at start-up.

Speed matters (it feeds the benchmarks), so no per-row random calls: values
come from pools drawn once per seed, whose sizes are distinct primes, so that
the combination of pooled fields does not repeat for billions of rows. A batch
is assembled column by column with slices of those pools; per row there are
only the uuid and timestamp string formats. Memory: ~6 MB of pools.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import TypeVar

from ..rows import Batch, RowStream
from .base import RowSource

COLUMNS = ["id", "uuid", "name", "email", "amount", "timestamp", "flag", "category"]
BATCH_SIZE = 2_000

# fmt: off
_FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia", "Tim", "Frances",
    "Edsger", "Hedy", "John", "Katherine", "Donald", "Sofia", "Mateo", "Amara", "Kenji", "Leila", "Omar",
    "Priya", "Chen", "Yuki", "Ingrid", "Tariq", "Zanele", "Diego", "Elif", "Nadia", "Oskar", "Fatima",
    "Lars", "Mei", "Kwame", "Ana", "Ivan", "Chloe", "Rahul", "Noor", "Pablo", "Hana", "Emeka", "Sara",
    "Jonas", "Aiko", "Malik",
]
_LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Perlman",
    "Berners-Lee", "Allen", "Dijkstra", "Lamarr", "Backus", "Johnson", "Knuth", "Okafor", "Garcia",
    "Nakamura", "Haddad", "Patel", "Wang", "Sato", "Larsen", "Rahman", "Dlamini", "Fernandez", "Yilmaz",
    "Kowalski", "Novak", "Ahmed", "Nilsson", "Li", "Mensah", "Silva", "Petrov", "Martin", "Sharma", "Khan",
    "Lopez", "Kim", "Eze", "Rossi", "Becker", "Tanaka", "Diallo", "O'Brien",
]
# fmt: on
_DOMAINS = ("example.com", "example.net", "example.org", "mail.example", "corp.example")
_CATEGORIES = (
    "books",
    "electronics",
    "garden",
    "grocery",
    "health",
    "home",
    "music",
    "office",
    "outdoor",
    "software",
    "sports",
    "toys",
    "travel",
    "apparel",
    "automotive",
    "beauty",
)

# Distinct primes: the pooled fields' combined period is their product (~10^16 rows).
_PERSON_POOL = 4093
_AMOUNT_POOL = 4099
_CATEGORY_POOL = 1021
_FLAG_POOL = 1031
_UUID_POOL = 2039
_JITTER_POOL = 1019
_SECONDS_PER_ROW = 10  # timestamps advance ~10 s per row; jitter stays below it, so they never go back


T = TypeVar("T")


def _cycle(pool: list[T], start: int, count: int) -> list[T]:
    """`count` items of `pool` taken cyclically from index `start` (pool is stored twice: one slice)."""
    size = len(pool) // 2
    offset = start % size
    if count <= size:
        return pool[offset : offset + count]
    return [pool[(offset + k) % size] for k in range(count)]


class SyntheticSource(RowSource):
    kind = "synthetic"

    def __init__(self, records: int, seed: int = 0, batch_size: int = BATCH_SIZE) -> None:
        self.records = records
        self.batch_size = batch_size
        rng = random.Random(seed)
        people = []
        for _ in range(_PERSON_POOL):
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            local = f"{first}.{last}".lower().replace("'", "")
            people.append((f"{first} {last}", f"{local}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"))
        amounts = []
        for _ in range(_AMOUNT_POOL):
            cents = rng.randint(100, 99_999) if rng.random() < 0.92 else -rng.randint(100, 20_000)
            amounts.append(Decimal(cents).scaleb(-2))
        uuid_prefixes = []
        for _ in range(_UUID_POOL):
            bits = rng.getrandbits(64)
            text = f"{bits:016x}"
            variant = "89ab"[rng.getrandbits(2)]
            uuid_prefixes.append(f"{text[:8]}-{text[8:12]}-4{text[12:15]}-{variant}{rng.getrandbits(12):03x}-")
        self._names = [name for name, _ in people] * 2
        self._emails = [email for _, email in people] * 2
        self._amounts = amounts * 2
        self._categories = [rng.choice(_CATEGORIES) for _ in range(_CATEGORY_POOL)] * 2
        self._flags = [rng.random() < 0.3 for _ in range(_FLAG_POOL)] * 2
        self._uuid_prefixes = uuid_prefixes * 2
        self._jitter = [rng.randrange(_SECONDS_PER_ROW) for _ in range(_JITTER_POOL)] * 2
        start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=rng.randrange(365 * 86_400)
        )
        self._epoch_seconds = int(start.timestamp())
        self._clock = [f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)]

    def stream(self) -> RowStream:
        return RowStream(list(COLUMNS), self._batches(), total=self.records)

    def _batches(self) -> Iterator[Batch]:
        for first in range(1, self.records + 1, self.batch_size):
            yield self.batch(first, min(self.batch_size, self.records + 1 - first))

    def batch(self, first_id: int, count: int) -> Batch:
        """Rows with ids first_id .. first_id + count - 1 (a pure function of the seed and the ids)."""
        ids = range(first_id, first_id + count)
        uuids = [f"{prefix}{i:012x}" for prefix, i in zip(_cycle(self._uuid_prefixes, first_id, count), ids)]
        base = self._epoch_seconds
        seconds = [base + _SECONDS_PER_ROW * i + j for i, j in zip(ids, _cycle(self._jitter, first_id, count))]
        first_day, last_day = seconds[0] // 86_400, seconds[-1] // 86_400
        days = {
            day: datetime.date.fromordinal(719_163 + day).isoformat() for day in range(first_day, last_day + 1)
        }  # 719_163 = date(1970, 1, 1).toordinal()
        clock = self._clock
        timestamps = [days[s // 86_400] + clock[s % 86_400] for s in seconds]
        return list(
            zip(
                ids,
                uuids,
                _cycle(self._names, first_id, count),
                _cycle(self._emails, first_id, count),
                _cycle(self._amounts, first_id, count),
                timestamps,
                _cycle(self._flags, first_id, count),
                _cycle(self._categories, first_id, count),
            )
        )
