"""CSV writer edges: RFC 4180 quoting, encodings, NULLs, the formula guard, and round trips through `csv`."""

from __future__ import annotations

import csv
import datetime
import io
import uuid
from decimal import Decimal

import pytest

from exportjob.spec import CsvOptions
from exportjob.worker.errors import ExportFailure, Reason
from exportjob.worker.formats.csv_writer import UTF8_BOM, CsvTableWriter


def write(columns, batches, **options) -> bytes:
    sink = io.BytesIO()
    writer = CsvTableWriter(sink, columns, CsvOptions(**options))
    for batch in batches:
        writer.write_rows(batch)
    writer.close()
    return sink.getvalue()


def parse(data: bytes, encoding: str = "utf-8", delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline=""), delimiter=delimiter))


def as_text(value) -> str:
    return "" if value is None else str(value)


def test_header_and_rows_with_crlf_by_default():
    assert write(["a", "b"], [[(1, "x"), (2, "y")]]) == b"a,b\r\n1,x\r\n2,y\r\n"


def test_lf_terminator_and_no_header():
    assert write(["a", "b"], [[(1, "x")]], header=False, line_terminator="lf") == b"1,x\n"


@pytest.mark.parametrize(
    "value, expected",
    [
        ('say "hi"', b'"say ""hi"""'),
        ("a,b", b'"a,b"'),
        ("line1\nline2", b'"line1\nline2"'),
        ("line1\r\nline2", b'"line1\r\nline2"'),
        ("cr\ronly", b'"cr\ronly"'),
        ("plain", b"plain"),
        (" padded ", b" padded "),
    ],
)
def test_rfc4180_quoting(value, expected):
    assert write(["c", "d"], [[(value, 1)]], header=False) == expected + b",1\r\n"


def test_quoting_follows_a_custom_delimiter():
    data = write(["a", "b"], [[("x;y", "p,q"), ("tab\there", 2)]], delimiter=";", header=False)
    assert data == b'"x;y";p,q\r\ntab\there;2\r\n'
    tabbed = write(["a", "b"], [[("x\ty", "p,q")]], delimiter="\t", header=False)
    assert tabbed == b'"x\ty"\tp,q\r\n'


def test_null_is_an_empty_field_and_round_trips_as_empty_string():
    data = write(["a", "b", "c"], [[(None, 1, None), ("", None, "z")]])
    assert data == b"a,b,c\r\n,1,\r\n,,z\r\n"
    assert parse(data)[1:] == [["", "1", ""], ["", "", "z"]]


def test_empty_result_with_and_without_header():
    assert write(["a", "b"], []) == b"a,b\r\n"
    assert write(["a", "b"], [[]], header=False) == b""
    assert write(["a"], [], encoding="utf-8-sig", header=False) == UTF8_BOM


def test_booleans_numbers_and_other_types():
    row = (
        True,
        False,
        0,
        -5,
        1.5,
        Decimal("-12.30"),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        datetime.date(2024, 1, 2),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        {"k": [1, "é"]},
        b"\x00\xff",
    )
    line = write(["c"] * len(row), [[row]], header=False).decode()
    assert line == (
        "true,false,0,-5,1.5,-12.30,2024-01-02T03:04:05,2024-01-02,12345678-1234-5678-1234-567812345678,"
        '"{""k"":[1,""é""]}",\\x00ff\r\n'
    )


def test_bool_column_with_nulls():
    assert write(["f"], [[(True,), (None,), (False,)]], header=False) == b'true\r\n""\r\nfalse\r\n'


def test_unicode_round_trip_utf8_and_bom():
    rows = [("日本語", "emoji 🎉"), ("Ünïcödé", "עברית")]
    plain = write(["a", "b"], [rows])
    assert parse(plain)[1:] == [list(r) for r in rows]
    with_bom = write(["a", "b"], [rows], encoding="utf-8-sig")
    assert with_bom.startswith(UTF8_BOM) and with_bom[3:] == plain
    assert with_bom.count(UTF8_BOM) == 1


def test_latin1_encodes_what_it_can_and_names_row_and_column_otherwise():
    assert write(["a"], [[("café",)]], encoding="latin-1", header=False) == "café\r\n".encode("latin-1")
    with pytest.raises(ExportFailure) as caught:
        write(["id", "name"], [[(1, "ok")], [(2, "fine"), (3, "Łódź")]], encoding="latin-1")
    failure = caught.value
    assert failure.reason == Reason.UNENCODABLE_TEXT and not failure.retryable
    assert "row 3" in failure.message and "'name'" in failure.message and "U+0141" in failure.message


def test_latin1_unencodable_header_is_named():
    with pytest.raises(ExportFailure, match="the header, column 'Ł'"):
        write(["Ł"], [], encoding="latin-1")


def test_very_long_cells_round_trip():
    long_text = ("x" * 999 + '"' + ",\n") * 1000  # ~1 MB with quotes, delimiters and newlines
    data = write(["a", "b"], [[(long_text, 1)]])
    previous = csv.field_size_limit(10 * 1024 * 1024)  # the reader's default limit is 128 KiB
    try:
        assert parse(data)[1] == [long_text, "1"]
    finally:
        csv.field_size_limit(previous)


@pytest.mark.parametrize("cell", ["=1+2", "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "=cmd|' /C calc'!A0", "-", "+"])
def test_formula_guard_prefixes_text_that_could_be_a_formula(cell):
    assert parse(write(["c"], [[(cell,)]], header=False)) == [["'" + cell]]


@pytest.mark.parametrize("cell", ["=1+2", "@x", "-1+2", "\tx"])
def test_formula_guard_can_be_turned_off(cell):
    assert parse(write(["c"], [[(cell,)]], header=False, formula_escape=False)) == [[cell]]


@pytest.mark.parametrize("cell", ["-12.50", "+3", "-1e-5", "-.5", "-inf", "1=1", "a-b", "x@y"])
def test_formula_guard_leaves_numbers_in_text_and_harmless_text_alone(cell):
    assert parse(write(["c"], [[(cell,)]], header=False)) == [[cell]]


def test_numbers_are_never_escaped():
    row = (-1, -2.5, Decimal("-3.10"), float("-inf"), -(10**30))
    assert write(["c"] * 5, [[row]], header=False) == b"-1,-2.5,-3.10,-inf,-1000000000000000000000000000000\r\n"


def test_formula_guard_applies_to_headers_and_mixed_columns():
    data = write(["=evil", "ok"], [[("=x", 1), (None, "=y"), (5, "@z")]])
    assert parse(data) == [["'=evil", "ok"], ["'=x", "1"], ["", "'=y"], ["5", "'@z"]]


def test_trigger_after_an_embedded_nul_is_not_confused_with_a_cell_start():
    assert parse(write(["c"], [[("a\x00=b",), ("ok",)]], header=False)) == [["a\x00=b"], ["ok"]]


def test_round_trip_of_mixed_rows_in_many_batches():
    rows = [
        (
            i,
            f"name {i}",
            None if i % 7 == 0 else f'quote " comma , newline \n {i}',
            i % 2 == 0,
            f"=f{i}" if i % 5 == 0 else "t",
        )
        for i in range(5000)
    ]
    batches = [rows[i : i + 333] for i in range(0, len(rows), 333)]
    parsed = parse(write(["id", "name", "text", "flag", "maybe"], batches))
    assert parsed[0] == ["id", "name", "text", "flag", "maybe"]
    expected = [
        [str(i), n, as_text(t), "true" if f else "false", "'" + m if m.startswith("=") else m] for i, n, t, f, m in rows
    ]
    assert parsed[1:] == expected


def test_write_rows_accepts_any_iterable_of_sequences():
    assert write(["a", "b"], [iter([[1, 2], (3, 4)])], header=False) == b"1,2\r\n3,4\r\n"


def test_every_trigger_sorts_before_A():
    """The COPY path's SQL pre-filter (`text < 'A' COLLATE "C"`) relies on it."""
    from exportjob.worker import formula

    assert all(ord(char) < ord("A") for char in formula.TRIGGERS)
