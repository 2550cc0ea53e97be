#!/usr/bin/env bash
# Installs the dev dependencies and runs the Patient Service Center locally on
# http://127.0.0.1:7071/api with demo data, no Azure needed. Extra arguments go to the dev host.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/python-env.sh
exec .venv/bin/python -m devhost --demo "$@"
