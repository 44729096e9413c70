# Shared environment for mldeploy's scripts. Source it; it sets variables and
# umask 077 (everything mldeploy writes is private to the user who runs it; see
# README "Security model").
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
# The passphrase of the local file backend's secrets provider: yours when you
# set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE, else the
# per-machine random one `make setup` writes (0600) to MLDEPLOY_PASSPHRASE_FILE.
export MLDEPLOY_PASSPHRASE_FILE="${MLDEPLOY_PASSPHRASE_FILE:-$MLDEPLOY_HOME/pulumi/passphrase}"
# What an earlier `source` of this file set is not "yours" (a child shell, make after .env.sh).
[ "${MLDEPLOY_PASSPHRASE_FROM:-}" = legacy ] && unset PULUMI_CONFIG_PASSPHRASE
[ "${MLDEPLOY_PASSPHRASE_FROM:-}" = file ] && [ "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" = "$MLDEPLOY_PASSPHRASE_FILE" ] \
  && unset PULUMI_CONFIG_PASSPHRASE_FILE
MLDEPLOY_PASSPHRASE_FROM=user
if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  MLDEPLOY_PASSPHRASE_FROM=file
  if [ -f "$MLDEPLOY_PASSPHRASE_FILE" ]; then
    export PULUMI_CONFIG_PASSPHRASE_FILE="$MLDEPLOY_PASSPHRASE_FILE"
  elif [ -n "$(find "$MLDEPLOY_HOME/pulumi/.pulumi/stacks" -name '*.json' -print -quit 2>/dev/null)" ]; then
    # Stacks made before the passphrase file existed used the old published demo
    # passphrase; say so rather than use it silently. `make setup` writes the file.
    echo "mldeploy: no $MLDEPLOY_PASSPHRASE_FILE yet; using the old demo passphrase of the existing stacks (run make setup)" >&2
    MLDEPLOY_PASSPHRASE_FROM=legacy
    export PULUMI_CONFIG_PASSPHRASE=mldeploy-demo
  fi
fi
export MLDEPLOY_PASSPHRASE_FROM
export PULUMI_SKIP_UPDATE_CHECK=1
# No automatic plugin downloads: mldeploy's programs need no resource plugin (dynamic
# providers run in the language host), and a plugin that cannot be downloaded costs
# every pulumi command about 2.5 s of retries. Install one with `pulumi plugin install`.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="${PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION:-true}"
# pulumi with SIGINT at its default. A script started in the background (`make test &`, nohup, some CI
# runners) ignores SIGINT and no shell in it can take that back; pulumi and its plugins inherit it, the
# language host then ignores the CLI's request to stop and the CLI waits 5 s for it: 4.8 s more on every
# preview, up, refresh and destroy (measured: an empty program's preview 0.86 s -> 5.67 s). GNU env puts
# the default back (README "Running pulumi by hand"; Python callers: tests/integration/harness.py).
# (Only where env has the option: GNU coreutils >= 8.31; elsewhere pulumi runs as it is.)
if env --default-signal=INT true 2>/dev/null; then
  pulumi() { env --default-signal=INT pulumi "$@"; }
fi
# The Python language host built here ignores Pulumi.yaml's `virtualenv`
# option, so the project's virtualenv must come first on PATH.
export PATH="$MLDEPLOY_ROOT/.venv/bin:$MLDEPLOY_ROOT/.tools/bin:$PATH"
# Private by default: state, logs, caches, wheels and artifacts (0700 dirs, 0600 files).
umask 077
