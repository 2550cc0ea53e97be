#!/usr/bin/env bash
# Static checks of the Bicep under infra/ with checkov, in a venv of its own (.venv-checkov):
# checkov pins old dependencies that clash with the test tooling in .venv.
#
#   scripts/checkov.sh            install if needed, then scan infra/ and print JSON to stdout
#   scripts/checkov.sh --install  install only (idempotent; fast when already installed)
#
# Suppressions live next to the resource they concern (`#checkov:skip=CKV_...: reason`), never
# here: this script passes no --skip-check / --soft-fail (tests/infra asserts that).
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
STAMP="$VENV/.checkov-$CHECKOV_VERSION"

install() {
  if [[ -x "$VENV/bin/checkov" && -f "$STAMP" ]]; then
    return 0
  fi
  echo "installing checkov $CHECKOV_VERSION into $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
  rm -f "$VENV"/.checkov-*
  touch "$STAMP"
}

install
if [[ "${1:-}" == "--install" ]]; then
  exit 0
fi

cd "$ROOT"
# --skip-download: offline (no policy download from the platform; without it checkov stalls here).
# -o json: tests read failed checks and parsing errors (checkov exits 0 on unparseable files).
exec "$VENV/bin/checkov" -d infra --framework bicep --skip-download -o json
