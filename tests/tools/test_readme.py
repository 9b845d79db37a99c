"""Every command in README.md's console blocks is run or checked here; a command of an unknown kind fails.

* `make T`: T is listed by `make help` and `make -n T` (a dry run) succeeds. The heavy targets
  (demo, test, bench, bench-download, testenv-*) are only dry-run here; `make lint` runs for
  real in tests/unit/test_lint.py; what the demo does runs in tests/cluster.
* `exportjob run …`: run for real (the output directory moved into a temp dir); the result says ok.
* `exportjob …` / `kubectl exportjob …` (cluster verbs): parsed by the CLI's own parser; the verbs
  run for real in tests/cluster/test_download.py. For `kubectl exportjob`, kubectl must also find
  the plugin (`kubectl-exportjob` in the venv) and run it (`--help`).
* `kubectl get …`: run for real against the dev cluster with the CRD installed (marker `cluster`).
* `helm install …`: rendered with the same arguments by `helm template` (marker `tools`).
* `export …`: the paths it names are the ones the Makefile and the dev cluster use.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from devcluster import DevCluster
from devcluster.paths import DEFAULT_STATE_DIR, REPO_ROOT
from exportjob.cli import build_parser

README = REPO_ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent


def readme_commands() -> list[list[str]]:
    """argv of every `$ ` line in the README's ```console blocks (continuations joined, comments dropped)."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        pending = ""
        for line in block.splitlines():
            if pending:
                line = pending + " " + line.strip()
                pending = ""
            elif not line.startswith("$ "):
                continue  # output
            else:
                line = line[2:]
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            commands.append(shlex.split(line, comments=True))
    return commands


COMMANDS = readme_commands()


def of_kind(*heads: str) -> list[list[str]]:
    return [c for c in COMMANDS if any(c[: len(h.split())] == h.split() for h in heads)]


def cli_args(command: list[str]) -> list[str]:
    if command[:2] == ["kubectl", "exportjob"]:
        return command[2:]
    assert Path(command[0]).name == "exportjob", command
    return command[1:]


def test_every_readme_command_is_of_a_known_kind():
    known = ("make", "exportjob", ".venv/bin/exportjob", "kubectl", "helm", "export")
    assert COMMANDS, "no console blocks found"
    unknown = [c for c in COMMANDS if c[0] not in known]
    assert not unknown, f"README commands this test does not know how to check: {unknown}"
    kubectl_verbs = {c[1] for c in of_kind("kubectl")}
    assert kubectl_verbs <= {"get", "exportjob"}, kubectl_verbs
    assert of_kind("make demo") and of_kind("kubectl exportjob")  # the quickstart is there


@pytest.mark.parametrize("command", of_kind("make"), ids=lambda c: " ".join(c))
def test_make_targets_exist_and_dry_run(command):
    listed = subprocess.run(["make", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    targets = {line.split()[0] for line in listed.splitlines() if line.strip()}
    for target in command[1:]:
        assert target in targets, f"`make {target}` is in the README but not in `make help`"
        dry = subprocess.run(["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr


@pytest.mark.parametrize("command", of_kind("exportjob", ".venv/bin/exportjob", "kubectl exportjob"), ids=" ".join)
def test_cli_commands_parse(command):
    arguments = build_parser().parse_args(cli_args(command))
    assert callable(arguments.handler)


@pytest.mark.parametrize(
    "command", [c for c in of_kind("exportjob", ".venv/bin/exportjob") if c[1] == "run"], ids=" ".join
)
def test_local_runs_work(command, tmp_path):
    argv = [str(VENV_BIN / "exportjob"), *command[1:]]
    argv[argv.index("--output-dir") + 1] = str(tmp_path / "out")
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["ok"] is True


def test_exports_name_the_real_paths():
    for command in of_kind("export"):
        for assignment in command[1:]:
            name, _, value = assignment.partition("=")
            if name == "KUBECONFIG":
                assert value.replace("$PWD", str(REPO_ROOT)) == str(DEFAULT_STATE_DIR / "kubeconfig")
            elif name == "PATH":
                assert value.split(":")[0].replace("$PWD", str(REPO_ROOT)) == str(VENV_BIN)
            else:
                pytest.fail(f"unexpected variable in the README: {assignment}")


def test_kubectl_finds_and_runs_the_plugin():
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    listed = subprocess.run(["kubectl", "plugin", "list"], capture_output=True, text=True, env=env)
    assert str(VENV_BIN / "kubectl-exportjob") in listed.stdout, listed.stdout + listed.stderr
    for command in of_kind("kubectl exportjob"):
        helped = subprocess.run(
            [*command[:3], "--help"], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert helped.returncode == 0 and f"usage: kubectl exportjob {command[2]}" in helped.stdout, helped.stderr


@pytest.mark.cluster
def test_kubectl_get_commands_run(tmp_path):
    """Each `kubectl get …` of the README, against a dev cluster of its own with the CRD installed."""
    commands = of_kind("kubectl get")
    assert commands
    cluster = DevCluster(tmp_path / "cluster", bin_dir=REPO_ROOT / "bin")
    try:
        cluster.start()
        kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]
        crd = str(REPO_ROOT / "crds" / "exportjob.io_exportjobs.yaml")
        subprocess.run([*kubectl, "apply", "--server-side", "-f", crd], check=True, capture_output=True)
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "crd/exportjobs.exportjob.io"],
            check=True,
            capture_output=True,
        )
        for command in commands:
            if "-n" in command:
                subprocess.run([*kubectl, "create", "namespace", command[command.index("-n") + 1]], capture_output=True)
            done = subprocess.run([*kubectl, *command[1:]], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{command}: {done.stderr}"
    finally:
        cluster.stop()


@pytest.mark.tools
@pytest.mark.parametrize("command", of_kind("helm install"), ids=lambda c: " ".join(c[:3]))
def test_helm_install_commands_render(command):
    helm = REPO_ROOT / "bin" / "helm"
    if not helm.exists():
        pytest.fail(f"{helm} not found: run `make tools`", pytrace=False)
    args = [a for a in command[2:] if a != "--create-namespace"]
    done = subprocess.run([str(helm), "template", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "kind: Deployment" in done.stdout
