#!/usr/bin/env bash
# Installs the dev dependencies and runs the Patient Service Center locally on
# http://127.0.0.1:7071/api with demo data, no Azure needed. Extra arguments go to the dev host.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
exec .venv/bin/python -m devhost --demo "$@"
