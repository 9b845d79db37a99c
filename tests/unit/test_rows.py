"""RowStream batching and the spec.columns projection (select, rename, order, unknown columns)."""

from __future__ import annotations

import pytest

from exportjob.spec import Column
from exportjob.worker.errors import ExportFailure, Reason
from exportjob.worker.rows import RowStream, batched, from_rows, project, resolve_projection

ROWS = [(1, "a", True), (2, "b", False), (3, "c", None)]


def stream() -> RowStream:
    return from_rows(["id", "name", "flag"], ROWS, size=2)


def test_batched_groups_rows_without_empty_batches():
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batched([], 2)) == []


def test_no_projection_keeps_columns_and_rows():
    projected = project(stream(), None)
    assert projected.columns == ["id", "name", "flag"]
    assert list(projected.rows()) == ROWS


def test_select_rename_and_reorder():
    projected = project(stream(), [Column(name="flag"), Column(name="id", header="Order ID")])
    assert projected.columns == ["flag", "Order ID"]
    assert list(projected.rows()) == [(True, 1), (False, 2), (None, 3)]


def test_single_column_projection_yields_tuples():
    projected = project(stream(), [Column(name="name", header="Name")])
    assert list(projected.rows()) == [("a",), ("b",), ("c",)]


def test_same_column_twice():
    projected = project(stream(), [Column(name="id"), Column(name="id", header="again")])
    assert projected.columns == ["id", "again"]
    assert next(iter(projected.rows())) == (1, 1)


def test_identity_projection_is_detected_but_headers_still_apply():
    wanted = [Column(name="id", header="ID"), Column(name="name"), Column(name="flag")]
    assert resolve_projection(["id", "name", "flag"], wanted) is None
    assert project(stream(), wanted).columns == ["ID", "name", "flag"]


def test_unknown_column_names_the_column_and_the_available_ones():
    with pytest.raises(ExportFailure) as caught:
        project(stream(), [Column(name="id"), Column(name="nope")])
    failure = caught.value
    assert failure.reason == Reason.INVALID_SPEC and not failure.retryable
    assert "spec.columns[1].name" in failure.message and "'nope'" in failure.message
    assert "available: id, name, flag" in failure.message


def test_total_survives_projection():
    source = from_rows(["id"], [(1,), (2,)])
    source.total = 2
    assert project(source, [Column(name="id", header="x")]).total == 2
