"""The synthetic source: deterministic per seed, typed realistic fields, batch boundaries invisible."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

from exportjob.worker.sources.synthetic import COLUMNS, SyntheticSource


def rows(records: int, seed: int, batch_size: int = 2000) -> list[tuple]:
    return list(SyntheticSource(records, seed, batch_size).stream().rows())


def test_same_seed_same_rows_whatever_the_batch_size():
    assert rows(5000, 7) == rows(5000, 7, batch_size=333)


def test_different_seeds_differ():
    assert rows(100, 1) != rows(100, 2)


def test_columns_and_types():
    stream = SyntheticSource(3, 0).stream()
    assert stream.columns == COLUMNS == ["id", "uuid", "name", "email", "amount", "timestamp", "flag", "category"]
    assert stream.total == 3
    for row in stream.rows():
        assert [type(v) for v in row] == [int, str, str, str, Decimal, str, bool, str]


def test_values_look_real():
    data = rows(20_000, 3)
    assert [r[0] for r in data] == list(range(1, 20_001))
    uuid_pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(uuid_pattern.match(r[1]) for r in data)
    assert len({r[1] for r in data}) == len(data)
    assert all(re.match(r"^[a-z.\-]+\d+@[a-z.]+$", r[3]) for r in data)
    assert all(r[4].as_tuple().exponent == -2 for r in data)
    negatives = sum(1 for r in data if r[4] < 0)
    assert 0.03 * len(data) < negatives < 0.15 * len(data)
    stamps = [datetime.datetime.fromisoformat(r[5].replace("Z", "+00:00")) for r in data]
    assert all(s.tzinfo is not None and s.utcoffset() == datetime.timedelta(0) for s in stamps)
    assert stamps == sorted(stamps)
    assert {True, False} == {r[6] for r in data}
    assert len({r[7] for r in data}) > 5


def test_zero_records():
    assert rows(0, 0) == []


def test_pooled_fields_do_not_repeat_with_a_short_period():
    data = rows(10_000, 5)
    combos = {(r[2], r[4], r[6], r[7]) for r in data}
    assert len(combos) > 9_900
