#!/usr/bin/env bash
# make demo: pulumi up on the demo stack, then a real prediction.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
STACK="${1:-local}"
cd "$MLDEPLOY_ROOT/stacks/demo"
python make_model.py
pulumi stack select --create "$STACK" >/dev/null
pulumi up --yes --skip-preview --stack "$STACK"
URI="$(pulumi stack output scoring_uri --stack "$STACK")"
echo
echo "POST $URI"
echo '  {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
printf '  -> '
curl -sS -X POST -H 'Content-Type: application/json' -d '{"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}' "$URI"
echo
echo
echo "Tear it down with: make demo-down   (pulumi destroy --stack $STACK in stacks/demo)"
