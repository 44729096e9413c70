#!/usr/bin/env bash
# The azure target's real lifecycle: up, a prediction, an update, refresh, destroy.
# Needs: a login DefaultAzureCredential can use (`az login`, or AZURE_CLIENT_ID /
# AZURE_TENANT_ID / AZURE_CLIENT_SECRET), AZURE_SUBSCRIPTION_ID, and the
# permissions listed in the README. Creates billable resources; destroys them at
# the end (and on failure, unless KEEP=1). Never run by CI.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# The azure extra lives in .venv-azure (make setup); its azure-native plugin is installed
# explicitly, since lib.sh turns off automatic plugin downloads.
export PATH="$MLDEPLOY_ROOT/.venv-azure/bin:$PATH"
cd "$MLDEPLOY_ROOT/stacks/azure"
: "${AZURE_SUBSCRIPTION_ID:?set AZURE_SUBSCRIPTION_ID to the subscription to use}"
pulumi plugin install resource azure-native "v$(python -c 'import importlib.metadata as m; print(m.version("pulumi-azure-native"))')"
LOCATION="${AZURE_LOCATION:-westeurope}"
SMOKE_STACK="${SMOKE_STACK:-azure-smoke}"

python - <<'PY'
from azure.identity import DefaultAzureCredential
DefaultAzureCredential(exclude_interactive_browser_credential=True).get_token("https://management.azure.com/.default")
print("azure-smoke: signed in")
PY
[ -d "$MLDEPLOY_ROOT/stacks/demo/model" ] || python "$MLDEPLOY_ROOT/stacks/demo/make_model.py"

pulumi stack select --create "$SMOKE_STACK" >/dev/null
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    pulumi destroy --yes --skip-preview --stack "$SMOKE_STACK" || true
    pulumi stack rm --yes "$SMOKE_STACK" || true
  fi
}
trap cleanup EXIT
pulumi config set --stack "$SMOKE_STACK" mldeploy:target azure
pulumi config set --stack "$SMOKE_STACK" azure-native:location "$LOCATION"
pulumi config set --stack "$SMOKE_STACK" azure-native:subscriptionId "$AZURE_SUBSCRIPTION_ID"
pulumi config set --stack "$SMOKE_STACK" mldeploy:serviceName "mldsmoke-$(date +%s | tail -c 7)"

time pulumi up --yes --skip-preview --stack "$SMOKE_STACK"
WS="$(pulumi stack output --stack "$SMOKE_STACK" workspace_id)"
SVC="$(pulumi config get --stack "$SMOKE_STACK" mldeploy:serviceName)"
WS="$WS" SVC="$SVC" python - <<'PY'
import json, os, urllib.request
from mldeploy.backends.azure import parse_target
from mldeploy.backends.azure.workspace import ml_client
ws = parse_target(os.environ["WS"], "workspace")
ml = ml_client(ws)
ep = ml.online_endpoints.get(os.environ["SVC"])
key = ml.online_endpoints.get_keys(os.environ["SVC"]).primary_key
body = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode()
req = urllib.request.Request(ep.scoring_uri, body, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
print("azure-smoke: prediction", urllib.request.urlopen(req, timeout=60).read().decode())
PY
pulumi refresh --yes --skip-preview --stack "$SMOKE_STACK"
pulumi preview --expect-no-changes --stack "$SMOKE_STACK"
echo "azure-smoke: ok"
