"""The engine and the worker entry point in-process: inline/synthetic sources to CSV, manifest, failures."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys

import pytest

from exportjob.spec import parse_spec
from exportjob.worker import main as worker_main
from exportjob.worker.credentials import Credentials
from exportjob.worker.engine import Progress, execute, run_export
from exportjob.worker.errors import ExportFailure, Reason

INLINE = {
    "format": "csv",
    "source": {"inline": {"columns": ["id", "name", "note"], "rows": [[1, "Ann", "=1+1"], [2, "Bob", None]]}},
    "output": {"path": "out/people.csv"},
}


def spec(**changes):
    return parse_spec({**INLINE, **changes})


def test_inline_export_with_projection_and_manifest(tmp_path):
    result = run_export(
        spec(columns=[{"name": "name", "header": "Name"}, {"name": "note"}]), str(tmp_path), Credentials()
    )
    data = (tmp_path / "out/people.csv").read_bytes()
    assert data == b"Name,note\r\nAnn,'=1+1\r\nBob,\r\n"
    assert (result.ok, result.rows, result.bytes, result.sha256) == (
        True,
        2,
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    manifest = json.loads((tmp_path / "out/people.csv.manifest.json").read_text())
    assert manifest["rows"] == 2 and manifest["sha256"] == result.sha256 and manifest["bytes"] == len(data)
    assert manifest["columns"] == ["Name", "note"] and manifest["format"] == "csv"
    assert manifest["source"] == {"kind": "inline"} and manifest["startedAt"].endswith("Z")


def test_synthetic_export_round_trips_and_reports_progress(tmp_path):
    updates: list[Progress] = []
    the_spec = parse_spec(
        {
            "format": "csv",
            "source": {"synthetic": {"records": 5000, "seed": 3}},
            "output": {"path": "s.csv"},
            "csv": {"lineTerminator": "lf"},
        }
    )
    result = run_export(the_spec, str(tmp_path), Credentials(), updates.append, progress_interval=0)
    assert result.rows == 5000
    rows = list(csv.reader(io.StringIO((tmp_path / "s.csv").read_text(), newline="")))
    assert rows[0] == ["id", "uuid", "name", "email", "amount", "timestamp", "flag", "category"]
    assert len(rows) == 5001 and rows[1][0] == "1" and rows[1][6] in ("true", "false")
    assert updates and updates[-1] == Progress(5000, result.bytes, 5000)


def test_unknown_column_fails_permanently_and_leaves_no_file(tmp_path):
    result = execute(spec(columns=[{"name": "nope"}]), str(tmp_path), Credentials())
    assert not result.ok and result.reason == Reason.INVALID_SPEC and result.exit_code == 65
    assert "'nope'" in result.message and "available: id, name, note" in result.message
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


def test_pdf_with_more_columns_than_a_page_holds_fails_permanently(tmp_path):
    columns = [f"c{i}" for i in range(200)]
    wide = parse_spec(
        {
            "format": "pdf",
            "output": {"path": "wide.pdf"},
            "source": {"inline": {"columns": columns, "rows": [list(range(200))]}},
        }
    )
    result = execute(wide, str(tmp_path), Credentials())
    assert not result.ok and result.reason == Reason.INVALID_SPEC and result.exit_code == 65
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


def test_missing_dsn_is_a_permanent_missing_credentials_failure(tmp_path):
    the_spec = parse_spec(
        {
            "format": "csv",
            "output": {"path": "x.csv"},
            "source": {"postgres": {"query": "SELECT 1", "connectionSecretRef": {"name": "pg", "key": "dsn"}}},
        }
    )
    with pytest.raises(ExportFailure) as caught:
        run_export(the_spec, str(tmp_path), Credentials())
    assert caught.value.reason == Reason.MISSING_CREDENTIALS and "EXPORTJOB_POSTGRES_DSN" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_unparsable_dsn_is_never_echoed(tmp_path):
    the_spec = parse_spec(
        {
            "format": "csv",
            "output": {"path": "x.csv"},
            "source": {"postgres": {"query": "SELECT 1", "connectionSecretRef": {"name": "pg", "key": "dsn"}}},
        }
    )
    result = execute(the_spec, str(tmp_path), Credentials(postgres_dsn="host=db password=hunter2secret garbage"))
    assert result.reason == Reason.INVALID_CREDENTIALS and "hunter2secret" not in result.to_json()


def run_main(argv, capsys):
    code = worker_main.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_worker_main_success_writes_termination_log_and_json_logs(tmp_path, capsys):
    log = tmp_path / "termination-log"
    code, out, err = run_main(
        ["--spec-json", json.dumps(INLINE), "--output-root", str(tmp_path), "--termination-log", str(log)], capsys
    )
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(log.read_text())
    assert json.loads(log.read_text())["rows"] == 2
    events = [json.loads(line)["event"] for line in err.splitlines()]
    assert events[0] == "export.started" and events[-1] == "export.finished"


@pytest.mark.parametrize(
    "spec_json, expected",
    [("{not json", "not valid JSON"), (json.dumps({**INLINE, "format": "xlsx"}), "spec.format")],
)
def test_worker_main_invalid_spec_exits_65(tmp_path, capsys, spec_json, expected):
    log = tmp_path / "log"
    code, _out, _ = run_main(
        ["--spec-json", spec_json, "--output-root", str(tmp_path), "--termination-log", str(log)], capsys
    )
    result = json.loads(log.read_text())
    assert code == 65 and result["reason"] == "InvalidSpec" and expected in result["message"]


def test_worker_main_reads_spec_from_file_and_env(tmp_path, capsys, monkeypatch):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(INLINE))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    code, _, _ = run_main(
        [
            "--spec-file",
            str(spec_file),
            "--output-root",
            str(tmp_path / "a"),
            "--termination-log",
            str(tmp_path / "l1"),
        ],
        capsys,
    )
    assert code == 0 and (tmp_path / "a/out/people.csv").exists()
    monkeypatch.setenv("EXPORTJOB_SPEC", json.dumps(INLINE))
    code, _, _ = run_main(["--output-root", str(tmp_path / "b"), "--termination-log", str(tmp_path / "l2")], capsys)
    assert code == 0 and (tmp_path / "b/out/people.csv").exists()


def test_worker_main_crash_exits_1_with_worker_crashed(tmp_path, capsys, monkeypatch):
    def explode(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(worker_main, "execute", explode)
    log = tmp_path / "log"
    code, _, err = run_main(
        ["--spec-json", json.dumps(INLINE), "--output-root", str(tmp_path), "--termination-log", str(log)], capsys
    )
    assert code == 1
    result = json.loads(log.read_text())
    assert (
        result["reason"] == "WorkerCrashed" and result["retryable"] is True and "ZeroDivisionError" in result["message"]
    )
    assert "export.crashed" in err


def test_missing_output_root_is_a_retryable_write_failure(tmp_path, capsys):
    code, out, _ = run_main(
        [
            "--spec-json",
            json.dumps(INLINE),
            "--output-root",
            str(tmp_path / "not-mounted"),
            "--termination-log",
            str(tmp_path / "log"),
        ],
        capsys,
    )
    assert code == 75 and json.loads(out)["reason"] == "WriteFailed"
    assert "cannot open the output root" in json.loads(out)["message"]


def test_unwritable_termination_log_is_only_a_warning(tmp_path, capsys):
    code, out, err = run_main(
        [
            "--spec-json",
            json.dumps(INLINE),
            "--output-root",
            str(tmp_path),
            "--termination-log",
            str(tmp_path / "missing-dir" / "log"),
        ],
        capsys,
    )
    assert code == 0 and "termination_log.unwritable" in err and json.loads(out)["ok"] is True


def test_pdf_reports_characters_its_font_cannot_print(tmp_path):
    cjk = parse_spec(
        {
            "format": "pdf",
            "output": {"path": "t.pdf"},
            # 東京 prints with the CJK fallback font; Ethiopic is in no configured font.
            "source": {"inline": {"columns": ["city"], "rows": [["Zürich"], ["東京"], ["ሰላ"]]}},
        }
    )
    result = run_export(cjk, str(tmp_path), Credentials())
    assert result.replaced_glyphs == 2 and result.to_dict()["replacedGlyphs"] == 2
    latin = parse_spec(
        {
            "format": "pdf",
            "output": {"path": "l.pdf"},
            "source": {"inline": {"columns": ["city"], "rows": [["Zürich"]]}},
        }
    )
    assert "replacedGlyphs" not in run_export(latin, str(tmp_path), Credentials()).to_dict()


@pytest.mark.parametrize(
    ("changes", "loaded"),
    [({}, False), ({"priority": "3"}, True)],  # "3": valid, but only the models read it
)
def test_worker_validates_without_pydantic_unless_the_spec_needs_the_models(tmp_path, changes, loaded):
    """Every export pays the worker's start-up: a spec as the operator writes it is checked by
    exportjob.lightspec, without importing pydantic; anything else goes to the models."""
    code = (
        "import sys\n"
        "from exportjob.worker.main import main\n"
        f"code = main(['--spec-json', {json.dumps({**INLINE, **changes})!r}, '--output-root', {str(tmp_path)!r}, "
        f"'--termination-log', {str(tmp_path / 'log')!r}])\n"
        "print(code, 'pydantic' in sys.modules, 'exportjob.spec' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == f"0 {loaded} {loaded}"
    assert (tmp_path / "out/people.csv").read_bytes() == b"id,name,note\r\n1,Ann,'=1+1\r\n2,Bob,\r\n"


def test_exportjob_version_read_from_the_metadata_file_is_importlib_metadatas():
    from importlib import metadata

    from exportjob.worker.engine import exportjob_version

    assert exportjob_version() == metadata.version("exportjob-operator")
