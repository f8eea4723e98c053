#!/usr/bin/env bash
# The release build in one command: a self-contained kubectl-dlm for this machine's os/arch in
# dist/ (tar.gz or zip, with the LICENSE), its sha256, and krew/dlm.yaml filled in from it.
# Needs only a Python >= 3.9 with venv (PYTHON=... to pick one) and the package index; builds in
# build/release/. Arguments go to packaging/release.py (see --help), e.g. --force, --dist DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" packaging/release.py "$@"
