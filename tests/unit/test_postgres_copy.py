"""`worker/sources/postgres_copy.py` without a server: the CRLF rewrite of COPY's records, and the range
process's imports (it must start quickly: no spec model, no pydantic)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exportjob.worker.sources.postgres_copy import _terminate


def reference(records: list[bytes]) -> bytes:
    """Each record's terminating LF as CRLF, one record at a time."""
    return b"".join(record[:-1] + b"\r\n" for record in records)


@pytest.mark.parametrize(
    "records",
    [
        [b"1,plain\n", b"2,text\n"],
        [b'1,"a\nb"\n', b"2,x\n"],  # an LF inside a quoted field stays
        [b'1,"say ""hi""\nthere",z\n', b'"",\n', b'3,"\n\n"\n'],  # doubled quotes, empty quoted, only LFs
        [b'"x","y\r\n"\n', b"\n"],  # a CR LF inside a field; an empty record (one NULL column)
        [b'a;"b;c";"d""\n"\n'],  # another delimiter
        [b'1,"a,b"\n', b'2,"say ""hi""",\n', b'"",""\n'],  # quoted fields, no LF inside one: the counted path
    ],
)
def test_crlf_rewrites_only_record_ends(records):
    block = bytearray(b"".join(records))
    assert bytes(_terminate(block, len(records), crlf=True)) == reference(records)
    assert bytes(_terminate(bytearray(b"".join(records)), len(records), crlf=False)) == b"".join(records)


def test_crlf_on_a_large_block_with_many_quoted_fields():
    records = [b'%d,"name, %d","line\nbreak ""q""",x\n' % (i, i) for i in range(20_000)]
    assert bytes(_terminate(bytearray(b"".join(records)), len(records), crlf=True)) == reference(records)
    quoted = [b'%d,"name, %d","no ""break""",x\n' % (i, i) for i in range(20_000)]
    assert bytes(_terminate(bytearray(b"".join(quoted)), len(quoted), crlf=True)) == reference(quoted)


def test_the_range_process_module_does_not_import_the_spec_model():
    code = (
        "import sys, exportjob.worker.sources.postgres_copy; "
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'exportjob.spec'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
