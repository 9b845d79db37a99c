#!/usr/bin/env bash
# The image's install steps, in one place: the Dockerfile's build stage runs this
# script, and hack/check-dockerfile-install.sh runs the same script into a fresh
# venv on the host (there is no Docker engine in CI), so the two cannot drift.
#
#   hack/image-install.sh VENV_DIR [SOURCE_DIR]
#
# Builds the project's wheel from SOURCE_DIR (default: this repository) and
# installs it into a new venv at VENV_DIR with every dependency pinned by
# SOURCE_DIR/constraints.txt. Nothing is compiled: every dependency installs from
# a wheel (--only-binary), so the build stage needs no compiler either.
set -euo pipefail
venv=${1:?usage: image-install.sh VENV_DIR [SOURCE_DIR]}
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m venv "$venv"
# The project's own wheel (pure Python); the constraints also pin the build backend when they list it.
PIP_CONSTRAINT="$src/constraints.txt" "$venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$wheels" "$src"
"$venv/bin/pip" install --quiet --only-binary=:all: --constraint "$src/constraints.txt" "$wheels"/exportjob_operator-*.whl
"$venv/bin/pip" check
# The runtime needs no pip: drop it, so the image carries no installer.
"$venv/bin/python" -m pip uninstall --quiet --yes pip
echo "installed $(ls "$wheels") into $venv"
