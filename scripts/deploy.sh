#!/usr/bin/env bash
# Provision the Azure resources (infra/main.bicep) and deploy the function app, with plain az.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/deploy.sh [options] <dev|prod> <location>

Deploys infra/main.bicep at subscription scope with infra/main.<env>.bicepparam (what-if first),
then packages the app and deploys it to the Flex Consumption function app.

Arguments:
  dev|prod        parameter file: infra/main.dev.bicepparam or infra/main.prod.bicepparam
  location        Azure region with Flex Consumption, e.g. swedencentral, eastus2

Options:
  --what-if-only  show the what-if and stop
  --yes           do not ask before applying the infrastructure changes
  --skip-infra    deploy code only (reads the outputs of the last infrastructure deployment)
  --skip-code     provision only
  --local-build   install dependencies here (manylinux wheels, Python 3.11) instead of a remote build
  --package-only  only write dist/api.zip (no Azure calls)
  -h, --help      this text

Environment:
  AZURE_ENV_NAME       environment name (default psc-<env>); part of every resource name
  PSC_ENTRA_CLIENT_ID  application (client) id of the API app registration (required for
                       infrastructure; docs/IDENTITY.md)
  PSC_ENTRA_AUDIENCE   (optional) the API's App ID URI, api://..., for v1.0 tokens
  PSC_PATIENT_AUTHORITY, PSC_PATIENT_TENANT_ID, PSC_PATIENT_CLIENT_ID
                       (optional, all three or none) patient sign-in with Entra External ID
  PSC_WEBHOOK_SECRET   Standard Webhooks secret whsec_<base64> (required for infrastructure;
                       stored in Key Vault, never in app settings or outputs)
  PSC_BOT_CALLBACK_HOSTS, PSC_BOT_CALLBACK_SECRET
                       (optional, the hosts need the secret) hosts bots' callback URLs may name,
                       and the whsec_<base64> secret that signs callbacks (stored in Key Vault)
  AZURE_PRINCIPAL_ID   (dev) your object id, to get data roles for local debugging against Azure

Prerequisites: az (2.60+) signed in (`az login`) to the target subscription; python3.
USAGE
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHAT_IF_ONLY=0 ASSUME_YES=0 SKIP_INFRA=0 SKIP_CODE=0 LOCAL_BUILD=0 PACKAGE_ONLY=0
POSITIONAL=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --what-if-only) WHAT_IF_ONLY=1 ;;
    --yes) ASSUME_YES=1 ;;
    --skip-infra) SKIP_INFRA=1 ;;
    --skip-code) SKIP_CODE=1 ;;
    --local-build) LOCAL_BUILD=1 ;;
    --package-only) PACKAGE_ONLY=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) POSITIONAL+=("$1") ;;
  esac
  shift
done

PYTHON="${PYTHON:-python3}"
DIST="$ROOT/dist"
PACKAGE="$DIST/api.zip"

# The deployable app: entry point, host config, dependencies list and the two code packages.
package() {
  rm -rf "$DIST" && mkdir -p "$DIST"
  local staging="$DIST/staging"
  mkdir -p "$staging"
  cp "$ROOT/function_app.py" "$ROOT/host.json" "$ROOT/requirements.txt" "$staging/"
  cp -R "$ROOT/functions" "$ROOT/shared" "$staging/"
  if [[ "$LOCAL_BUILD" == 1 ]]; then
    # Flex runs Linux x86_64, Python 3.11: fetch matching wheels only (no local compilation).
    "$PYTHON" -m pip install --quiet --disable-pip-version-check \
      --target "$staging/.python_packages/lib/site-packages" \
      --platform manylinux2014_x86_64 --implementation cp --python-version 3.11 \
      --only-binary=:all: -r "$ROOT/requirements.txt"
  fi
  "$PYTHON" - "$staging" "$PACKAGE" <<'PY'
import sys, zipfile
from pathlib import Path
src, out = Path(sys.argv[1]), Path(sys.argv[2])
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
    for path in sorted(src.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            zf.write(path, path.relative_to(src).as_posix())
PY
  rm -rf "$staging"
  echo "package: ${PACKAGE#"$ROOT"/}" >&2
}

if [[ "$PACKAGE_ONLY" == 1 ]]; then
  package
  exit 0
fi

if [[ ${#POSITIONAL[@]} -ne 2 ]]; then
  usage >&2
  exit 2
fi
ENVIRONMENT="${POSITIONAL[0]}"
LOCATION="${POSITIONAL[1]}"
case "$ENVIRONMENT" in
  dev|prod) ;;
  *) echo "environment must be dev or prod, got: $ENVIRONMENT" >&2; exit 2 ;;
esac

command -v az >/dev/null || { echo "az (Azure CLI) not found" >&2; exit 1; }
az account show --query '{subscription: name, id: id}' -o tsv >/dev/null \
  || { echo "not signed in: run az login" >&2; exit 1; }

export AZURE_ENV_NAME="${AZURE_ENV_NAME:-psc-$ENVIRONMENT}"
export AZURE_LOCATION="$LOCATION"
DEPLOYMENT="psc-${AZURE_ENV_NAME}"
TEMPLATE="$ROOT/infra/main.bicep"
PARAMS="$ROOT/infra/main.$ENVIRONMENT.bicepparam"

if [[ "$SKIP_INFRA" == 0 ]]; then
  : "${PSC_ENTRA_CLIENT_ID:?set PSC_ENTRA_CLIENT_ID to the application (client) id of the API}"
  if [[ -n "${PSC_PATIENT_AUTHORITY:-}${PSC_PATIENT_TENANT_ID:-}${PSC_PATIENT_CLIENT_ID:-}" ]]; then
    for name in PSC_PATIENT_AUTHORITY PSC_PATIENT_TENANT_ID PSC_PATIENT_CLIENT_ID; do
      [[ -n "${!name:-}" ]] || { echo "set $name too: patient sign-in needs all three PSC_PATIENT_* settings" >&2; exit 2; }
    done
  fi
  : "${PSC_WEBHOOK_SECRET:?set PSC_WEBHOOK_SECRET (whsec_<base64>)}"
  if [[ -n "${PSC_BOT_CALLBACK_HOSTS:-}" && -z "${PSC_BOT_CALLBACK_SECRET:-}" ]]; then
    echo "set PSC_BOT_CALLBACK_SECRET too: bot callbacks to PSC_BOT_CALLBACK_HOSTS are signed with it" >&2
    exit 2
  fi
  # The Bicep reads containers and queues from infra/catalog.json: refuse a stale copy.
  "$PYTHON" "$ROOT/scripts/gen_infra_catalog.py" --check

  echo "what-if: $DEPLOYMENT ($AZURE_ENV_NAME, $LOCATION, $ENVIRONMENT)" >&2
  az deployment sub what-if --name "$DEPLOYMENT" --location "$LOCATION" \
    --template-file "$TEMPLATE" --parameters "$PARAMS"
  if [[ "$WHAT_IF_ONLY" == 1 ]]; then
    exit 0
  fi
  if [[ "$ASSUME_YES" == 0 ]]; then
    read -r -p "Apply these changes? [y/N] " answer
    [[ "$answer" == [yY]* ]] || { echo "cancelled" >&2; exit 1; }
  fi
  az deployment sub create --name "$DEPLOYMENT" --location "$LOCATION" \
    --template-file "$TEMPLATE" --parameters "$PARAMS" --output none
fi

if [[ "$SKIP_CODE" == 1 ]]; then
  exit 0
fi

output() {
  az deployment sub show --name "$DEPLOYMENT" --query "properties.outputs.$1.value" -o tsv
}
RESOURCE_GROUP="$(output AZURE_RESOURCE_GROUP)"
APP_NAME="$(output SERVICE_API_NAME)"

package
BUILD_REMOTE=true
[[ "$LOCAL_BUILD" == 1 ]] && BUILD_REMOTE=false
echo "deploying $PACKAGE to $APP_NAME ($RESOURCE_GROUP), remote build: $BUILD_REMOTE" >&2
# On Flex Consumption the CLI publishes through One Deploy (/api/publish) into the deployment
# container; Kudu zipdeploy is not used.
az functionapp deployment source config-zip --resource-group "$RESOURCE_GROUP" --name "$APP_NAME" \
  --src "$PACKAGE" --build-remote "$BUILD_REMOTE"

echo "deployed: $(output SERVICE_API_URI)/api/health" >&2
