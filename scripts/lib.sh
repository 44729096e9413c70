# Shared environment for mldeploy's scripts. Source it; it only sets variables.
#
# Everything mutable lives under MLDEPLOY_HOME (default: <repo>/.mldeploy):
#   pulumi/      the Pulumi file backend          logs/       daemon and build logs
#   registry/    OCI registry storage, htpasswd, nginx config
#   wheelhouse/  Python wheels that go into images
#   mlflow/      the MLflow model registry (SQLite) and its artifacts
#   cache/       content-digest cache
MLDEPLOY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MLDEPLOY_ROOT
export MLDEPLOY_HOME="${MLDEPLOY_HOME:-$MLDEPLOY_ROOT/.mldeploy}"
export MLDEPLOY_REGISTRY_PORT="${MLDEPLOY_REGISTRY_PORT:-5000}"
export MLDEPLOY_REGISTRY="${MLDEPLOY_REGISTRY:-127.0.0.1:$MLDEPLOY_REGISTRY_PORT}"
export MLDEPLOY_BASE_OS_IMAGE="${MLDEPLOY_BASE_OS_IMAGE:-mldeploy/debian:bookworm}"
export MLDEPLOY_WHEELHOUSE="${MLDEPLOY_WHEELHOUSE:-$MLDEPLOY_HOME/wheelhouse}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$MLDEPLOY_HOME/pulumi}"
# The demo passphrase for the local file backend's secrets provider. It protects
# nothing of value on a developer machine; set your own for anything shared.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-mldeploy-demo}"
export PULUMI_SKIP_UPDATE_CHECK=1
# No automatic plugin downloads: mldeploy's programs need no resource plugin (dynamic
# providers run in the language host), and a plugin that cannot be downloaded costs
# every pulumi command about 2.5 s of retries. Install one with `pulumi plugin install`.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="${PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION:-true}"
# The Python language host built here ignores Pulumi.yaml's `virtualenv`
# option, so the project's virtualenv must come first on PATH.
export PATH="$MLDEPLOY_ROOT/.venv/bin:$MLDEPLOY_ROOT/.tools/bin:$PATH"
