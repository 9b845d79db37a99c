"""`parallelism > 1` needs something to split by: a splitColumn, or a query reading one table whole
(`SELECT * FROM table`, split by its blocks). Anything else is refused by the spec's validation, so the
operator fails it as InvalidSpec before it creates a Job."""

from __future__ import annotations

import pytest

from exportjob.spec import SpecError, parse_spec, plain_table


def spec(query: str, **source) -> dict:
    return {
        "format": "csv",
        "source": {"postgres": {"query": query, "connectionSecretRef": {"name": "pg", "key": "dsn"}, **source}},
        "output": {"path": "x.csv"},
    }


@pytest.mark.parametrize(
    ("query", "table"),
    [
        ("SELECT * FROM orders", "orders"),
        ("  select  *  from  public.orders ; ", "public.orders"),
        ('SELECT * FROM "Sales"."Order ""2026"""', '"Sales"."Order ""2026"""'),
        ("SELECT * FROM orders WHERE id > 3", None),
        ("SELECT id FROM orders", None),
        ("SELECT * FROM orders; DROP TABLE orders", None),
        ("SELECT * FROM a, b", None),
    ],
)
def test_plain_table(query, table):
    assert plain_table(query) == table


def test_parallelism_without_split_column_needs_a_whole_table():
    assert parse_spec(spec("SELECT * FROM orders", parallelism=4)).source.postgres.parallelism == 4
    assert parse_spec(spec("SELECT id FROM orders", parallelism=2, splitColumn="id")).source.postgres.split_column
    with pytest.raises(SpecError, match="needs splitColumn"):
        parse_spec(spec("SELECT id FROM orders", parallelism=2))
    assert parse_spec(spec("SELECT id FROM orders")).source.postgres.parallelism == 1
