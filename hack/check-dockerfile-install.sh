#!/usr/bin/env bash
# Proves the Dockerfile's install steps without a Docker engine.
#
# Reads the Dockerfile itself (so this check follows it): the build stage's COPY
# lines become a temporary build context, its RUN line (hack/image-install.sh
# VENV SRC) runs against that context into a fresh venv in a temp dir, and the
# runtime stage is checked for what the image promises: it only copies the venv
# from the build stage, installs nothing, runs as uid/gid 65532 (the worker Job's
# runAsUser in manifests.py) and defaults to `exportjob-operator`. Then the
# venv's console scripts run: `exportjob-operator --help`, `exportjob-worker
# --help`, `exportjob --help`, and `exportjob run` of a small inline manifest.
#
#   hack/check-dockerfile-install.sh          (make image-install-check)
#   KEEP=1 hack/check-dockerfile-install.sh   keep the temp dir for inspection
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/exportjob-image-check.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
log() { printf '[image-check] %s\n' "$*" >&2; }

# 1. Parse the Dockerfile; lay out the build context; print the install command.
plan=$("$python" - "$repo" "$work" <<'PY'
import re, shlex, shutil, sys
from pathlib import Path

repo, work = Path(sys.argv[1]), Path(sys.argv[2])
text = (repo / "Dockerfile").read_text()
lines, buf = [], ""
for raw in text.splitlines():
    if raw.lstrip().startswith("#") and not buf:
        continue
    buf += raw.rstrip("\\").rstrip() + " " if raw.endswith("\\") else raw
    if not raw.endswith("\\"):
        if buf.strip():
            lines.append(buf.strip())
        buf = ""
stages, args = [], {}
for line in lines:
    op, _, rest = line.partition(" ")
    op = op.upper()
    if op == "ARG" and not stages:
        name, _, default = rest.partition("=")
        args[name] = default
    elif op == "FROM":
        base, _, alias = rest.partition(" AS ")
        stages.append({"base": base.strip(), "alias": alias.strip(), "ops": []})
    else:
        stages[-1]["ops"].append((op, rest))

def fail(message):
    sys.exit(f"Dockerfile: {message}")

if len(stages) != 2:
    fail(f"expected two stages (build, runtime), found {len(stages)}")
build, runtime = stages
base = args.get("PYTHON_IMAGE", "")
if not re.match(r"^python:3\.11(\.\d+)?-slim", base) or build["base"] != runtime["base"] != "${PYTHON_IMAGE}":
    fail(f"both stages must use the same slim Python 3.11 base (ARG PYTHON_IMAGE={base!r})")

# Build stage: COPY sources into a context, exactly one RUN: hack/image-install.sh VENV SRC.
ctx = work / "ctx"
workdir = "/"
runs = []
for op, rest in build["ops"]:
    if op == "WORKDIR":
        workdir = rest
    elif op == "COPY":
        parts = shlex.split(rest)
        if any(p.startswith("--") for p in parts):
            fail(f"unexpected COPY flags in the build stage: {rest}")
        *sources, dest = parts
        target = Path(dest) if dest.startswith("/") else Path(workdir) / dest
        for source in sources:
            src = repo / source
            if not src.exists():
                fail(f"COPY source {source} does not exist")
            out = ctx / target.relative_to("/")
            if src.is_dir():
                shutil.copytree(src, out, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            else:
                dst = out / src.name if dest.endswith("/") or len(sources) > 1 else out
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    elif op == "RUN":
        runs.append(rest)
if len(runs) != 1:
    fail(f"the build stage must have exactly one RUN (hack/image-install.sh), found {len(runs)}")
cmd = shlex.split(runs[0])
if cmd[0] != "hack/image-install.sh" or len(cmd) != 3:
    fail(f"the build stage's RUN must be 'hack/image-install.sh VENV SRC', found {runs[0]!r}")
venv, src = cmd[1], cmd[2]
if Path(src) != Path(workdir):
    fail(f"image-install.sh SRC {src} is not the WORKDIR {workdir}")

# Runtime stage: copies only the venv, installs only the runtime packages, non-root 65532, default command.
manifests = (repo / "operator/exportjob/controller/manifests.py").read_text()
uid = re.search(r"^RUN_AS_USER = (\d+)", manifests, re.M).group(1)
seen = {op for op, _ in runtime["ops"]}
copies = [rest for op, rest in runtime["ops"] if op == "COPY"]
if copies != [f"--from={build['alias']} {venv} {venv}"]:
    fail(f"the runtime stage must copy only the venv from the build stage, found {copies}")
# Only the Debian packages the worker needs at run time (the PDF fonts, qpdf): nothing else, no build tools.
RUNTIME_PACKAGES = ["fonts-dejavu-core", "fonts-noto-cjk", "qpdf"]
expected_apt = (
    "apt-get update && apt-get install -y --no-install-recommends " + " ".join(RUNTIME_PACKAGES)
    + " && rm -rf /var/lib/apt/lists/*"
)
for op, rest in runtime["ops"]:
    if op == "RUN" and " ".join(rest.split()) == expected_apt:
        continue
    if op == "RUN" and re.search(r"apt-get|apk |pip|gcc|make|build-essential|curl|wget", rest):
        fail(f"the runtime stage may only install {RUNTIME_PACKAGES} (one RUN: {expected_apt!r}): RUN {rest}")
users = [rest for op, rest in runtime["ops"] if op == "USER"]
if users != [f"{uid}:{uid}"]:
    fail(f"the runtime stage must end as USER {uid}:{uid} (RUN_AS_USER in manifests.py), found {users}")
if ("CMD", '["exportjob-operator"]') not in runtime["ops"] or "ENTRYPOINT" in seen:
    fail('the runtime stage needs CMD ["exportjob-operator"] and no ENTRYPOINT (the worker Job sets command)')
envs = " ".join(rest for op, rest in runtime["ops"] if op == "ENV")
if f"PATH={venv}/bin:" not in envs:
    fail(f"the runtime stage must put {venv}/bin first on PATH")
if not any(op == "LABEL" and "org.opencontainers.image.source" in rest for op, rest in runtime["ops"]):
    fail("the runtime stage must carry OCI labels")
# The paths the image uses, remapped under the work dir.
print(f"{ctx / Path(workdir).relative_to('/')} {work / Path(venv).relative_to('/')} {venv}")
PY
)
read -r ctx_src venv image_venv <<<"$plan"
log "Dockerfile parsed: build context laid out in $ctx_src; install into $venv (the image's $image_venv)"

# 2. The build stage's RUN, against that context (its own copy of image-install.sh).
started=$(date +%s)
(cd "$ctx_src" && PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 hack/image-install.sh "$venv" "$ctx_src") >&2
log "install took $(( $(date +%s) - started ))s; venv $(du -sm "$venv" | cut -f1) MB"
[ ! -e "$venv/bin/pip" ] || { log "pip is still in the venv"; exit 1; }

# 3. The console scripts, from the venv alone (as in the image: venv first on PATH, cwd /tmp-like).
run() { (cd "$work" && env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$work" PYTHONDONTWRITEBYTECODE=1 "$@"); }
for script in exportjob-operator exportjob-worker exportjob; do
  run "$script" --help > "$work/$script.help"
  log "$script --help: ok ($(head -1 "$work/$script.help" | cut -c1-70))"
done
cat > "$work/inline.yaml" <<'YAML'
apiVersion: exportjob.io/v1alpha1
kind: ExportJob
metadata:
  name: image-check
spec:
  format: csv
  source:
    inline:
      columns: [sku, name, price]
      rows:
        - ["A-1", "Widget, large", 12.5]
        - ["B-2", "Zürich", 99]
  output:
    path: reports/check.csv
YAML
run exportjob run -f "$work/inline.yaml" --output-dir "$work/out" > "$work/run.out"
expected=$'sku,name,price\r\nA-1,"Widget, large",12.5\r\nB-2,Zürich,99\r\n'
actual=$(cat "$work/out/reports/check.csv"; echo x)
if [ "${actual%x}" != "$expected" ]; then
  log "unexpected output of exportjob run:"; cat -A "$work/out/reports/check.csv" >&2; exit 1
fi
log "exportjob run: $(tail -1 "$work/run.out" | cut -c1-120)"
echo "the Dockerfile's install steps work: wheel + pinned dependencies in a fresh venv; operator, worker and CLI run"
