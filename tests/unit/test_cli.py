"""`exportjob run`: manifest validation messages, exit codes, result JSON as the last stdout line."""

from __future__ import annotations

import json
import textwrap

import pytest

from exportjob import cli

MANIFEST = """\
apiVersion: exportjob.io/v1alpha1
kind: ExportJob
metadata: {name: people}
spec:
  format: csv
  source:
    inline:
      columns: [id, name]
      rows: [[1, "Ann"], [2, "Bob"]]
  output: {path: reports/people.csv}
"""


def run(tmp_path, capsys, text, *extra):
    manifest = tmp_path / "export.yaml"
    manifest.write_text(textwrap.dedent(text))
    code = cli.main(["run", "-f", str(manifest), "--output-dir", str(tmp_path / "out"), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_writes_the_file_and_prints_the_result_last(tmp_path, capsys):
    code, out, err = run(tmp_path, capsys, MANIFEST)
    assert code == 0 and err == ""  # no progress line: stderr is not a terminal
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] and result["rows"] == 2 and result["path"] == "reports/people.csv"
    assert (tmp_path / "out/reports/people.csv").read_bytes() == b"id,name\r\n1,Ann\r\n2,Bob\r\n"
    assert result["bytes"] == 23 and len(result["sha256"]) == 64


@pytest.mark.parametrize(
    "change, expected",
    [
        (("path: reports/people.csv", "path: /etc/people.csv"), "spec.output.path: "),
        (("path: reports/people.csv", "path: ../people.csv"), "spec.output.path: "),
        (("format: csv", "format: xlsx"), "spec.format: "),
        (('      rows: [[1, "Ann"], [2, "Bob"]]', "      rows: [[1]]"), "spec.source.inline"),
        (("kind: ExportJob", "kind: Job"), "kind: "),
        (("  output: {path: reports/people.csv}", "  output: {path: x.csv, colour: red}"), "spec.output.colour"),
    ],
)
def test_invalid_manifest_names_the_field_and_exits_2(tmp_path, capsys, change, expected):
    code, out, err = run(tmp_path, capsys, MANIFEST.replace(*change))
    assert code == 2 and out == ""
    assert "invalid manifest" in err and expected in err


def test_not_yaml_or_several_documents(tmp_path, capsys):
    code, _, err = run(tmp_path, capsys, "a: [unclosed")
    assert code == 2 and "not valid YAML" in err
    code, _, err = run(tmp_path, capsys, MANIFEST + "---\n" + MANIFEST)
    assert code == 2 and "exactly one YAML document" in err


def test_missing_file(tmp_path, capsys):
    code = cli.main(["run", "-f", str(tmp_path / "nope.yaml"), "--output-dir", str(tmp_path)])
    assert code == 2 and "cannot read" in capsys.readouterr().err


def test_failure_exit_code_and_message(tmp_path, capsys):
    bad = MANIFEST.replace("  output:", "  columns: [{name: missing}]\n  output:")
    code, out, err = run(tmp_path, capsys, bad)
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 65 and result["reason"] == "InvalidSpec" and "InvalidSpec" in err


def test_progress_line_draws_a_bar():
    import io

    from exportjob.worker.engine import Progress

    stream = io.StringIO()
    line = cli.ProgressLine(stream, width=10)
    line(Progress(50, 2_000_000, 100))
    line(Progress(7, 10, None))
    line.finish()
    text = stream.getvalue()
    assert "[#####-----]  50.0% 50/100 rows  2.0 MB" in text and "\r7 rows  10 B" in text and text.endswith("\n")


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main([])
    assert caught.value.code == 2


# --- issue 9, item 15: bad output directories and absurd manifests give one line and exit 2 -----------------
def _one_line_usage_error(code, out, err):
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("exportjob run: ")


def test_output_dir_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    manifest = tmp_path / "export.yaml"
    manifest.write_text(MANIFEST)
    (tmp_path / "file").write_text("x")
    code = cli.main(["run", "-f", str(manifest), "--output-dir", str(tmp_path / "file")])
    captured = capsys.readouterr()
    _one_line_usage_error(code, captured.out, captured.err)
    assert "not a directory" in captured.err


def test_output_dir_that_cannot_be_created_is_a_usage_error(tmp_path, capsys):
    manifest = tmp_path / "export.yaml"
    manifest.write_text(MANIFEST)
    (tmp_path / "file").write_text("x")
    code = cli.main(["run", "-f", str(manifest), "--output-dir", str(tmp_path / "file/sub")])
    captured = capsys.readouterr()
    _one_line_usage_error(code, captured.out, captured.err)
    assert "cannot create it" in captured.err


@pytest.mark.parametrize("nesting", ["[" * 5000 + "]" * 5000, "{a: " * 5000 + "1" + "}" * 5000])
def test_deeply_nested_manifest_is_a_usage_error(tmp_path, capsys, nesting):
    code, out, err = run(tmp_path, capsys, MANIFEST.replace('[[1, "Ann"], [2, "Bob"]]', nesting))
    assert code == 2 and out == ""
    assert "nested too deeply" in err and "Traceback" not in err
