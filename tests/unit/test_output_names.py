"""Output names are checked in bytes up front; the data file and its manifest appear together (issue 9, item 9)."""

from __future__ import annotations

import os

import pytest

from exportjob.spec import parse_spec
from exportjob.worker.credentials import Credentials
from exportjob.worker.engine import execute
from exportjob.worker.output import MAX_NAME_BYTES, AtomicOutput


def export(tmp_path, path):
    spec = parse_spec({"format": "csv", "source": {"synthetic": {"records": 3}}, "output": {"path": path}})
    return execute(spec, str(tmp_path), Credentials())


@pytest.mark.parametrize(
    "name",
    [
        "é" * 125,  # 250 bytes, 125 characters: a legal name, too long once the suffixes are added
        "x" * 246 + ".csv",  # 250 bytes of ASCII: the data file fits, its manifest would not
        "d/" + "ü" * 128 + "/x.csv",  # a directory name of 256 bytes
    ],
)
def test_too_long_names_fail_up_front_and_leave_nothing(tmp_path, name):
    result = export(tmp_path, name)
    assert (result.reason, result.retryable) == ("OutputPathInvalid", False), result.message
    assert "bytes in UTF-8" in result.message
    assert list(tmp_path.rglob("*")) == []


def test_longest_allowed_name_gets_its_manifest(tmp_path):
    name = "é" * (MAX_NAME_BYTES // 2) + "x" * (MAX_NAME_BYTES % 2)
    assert len(name.encode()) == MAX_NAME_BYTES
    result = export(tmp_path, name)
    assert result.ok, result.message
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, name + ".manifest.json"]


def test_a_directory_in_the_manifests_place_is_refused_before_writing(tmp_path):
    (tmp_path / "x.csv.manifest.json").mkdir()
    result = export(tmp_path, "x.csv")
    assert result.reason == "OutputPathInvalid" and "x.csv.manifest.json" in result.message
    assert not (tmp_path / "x.csv").exists()


def test_manifest_rename_failure_removes_the_data_file(tmp_path, monkeypatch):
    real_rename = os.rename

    def rename(src, dst, **kwargs):
        if dst.endswith(".manifest.json"):
            raise OSError(5, "Input/output error")
        return real_rename(src, dst, **kwargs)

    with pytest.raises(Exception, match="manifest"), AtomicOutput(str(tmp_path), "x.csv") as output:
        output.sink.write(b"a\n")
        monkeypatch.setattr(os, "rename", rename)
        output.commit(lambda info: {"bytes": info.bytes})
    assert list(tmp_path.iterdir()) == []
