#!/usr/bin/env bash
# Installs everything the suite needs (Python deps, Azurite from npm, checkov in its own venv,
# Debian's Chromium when missing and run as root),
# starts Azurite, runs lint, type check and the whole test suite, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/python-env.sh

# Azurite, and adaptivecards (Microsoft's Adaptive Card parser: tests/consults checks the consult
# card with it).
if [ ! -x node_modules/.bin/azurite ] || [ ! -f node_modules/adaptivecards/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/checkov.sh --install
# Debian's Chromium for the browser tests (tests/browser), when missing and this user may install
# it (root, apt); otherwise those tests skip, saying why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== chromium (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "chromium could not be installed: the browser tests will skip"
fi

AZURITE_DIR=$(mktemp -d)
AZURITE_PORT=${AZURITE_BLOB_PORT:-10000}
node_modules/.bin/azurite-blob --silent --location "$AZURITE_DIR" --blobHost 127.0.0.1 \
  --blobPort "$AZURITE_PORT" --skipApiVersionCheck --loose >"$AZURITE_DIR/azurite.log" 2>&1 &
AZURITE_PID=$!
cleanup() {
  kill "$AZURITE_PID" 2>/dev/null || true
  wait "$AZURITE_PID" 2>/dev/null || true
  rm -rf "$AZURITE_DIR"
}
trap cleanup EXIT
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$AZURITE_PORT") 2>/dev/null; then break; fi
  sleep 0.2
done
# Azurite's well-known development account (public, documented; not a secret).
export PSC_TEST_AZURITE_BLOB="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/devstoreaccount1;"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest -q "$@"
