#!/usr/bin/env bash
# Prepare a Python virtual environment with Box's official SDK (`box-sdk-gen`, with the JWT
# extra) under target/sdk-venv, for the official-SDK test (tests/e2e/sdk.rs). Idempotent: when
# the venv already holds the pinned version it only prints the interpreter path (fast).
#
#   scripts/sdk-venv.sh            # prints the venv's python path on the last line of stdout
#
# Exit codes: 0 ready; 3 the Python package index is unreachable (the test then skips with a loud
# message); 1 anything else (no python3, venv creation failed, pip failed for another reason).
# SDK_VENV_DIR overrides the location; BOX_SDK_GEN_VERSION the pinned version.
set -euo pipefail

cd "$(dirname "$0")/.."
version="${BOX_SDK_GEN_VERSION:-1.17.0}"
venv="${SDK_VENV_DIR:-target/sdk-venv}"
python="$venv/bin/python"
stamp="$venv/.box-sdk-gen-$version"

log() { printf '==> sdk-venv: %s\n' "$*" >&2; }

if [ -x "$python" ] && [ -f "$stamp" ]; then
  printf '%s\n' "$(cd "$venv" && pwd)/bin/python"
  exit 0
fi

# One installer at a time (parallel test runs share target/).
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
  if [ -x "$python" ] && [ -f "$stamp" ]; then
    printf '%s\n' "$(cd "$venv" && pwd)/bin/python"
    exit 0
  fi
fi

command -v python3 >/dev/null 2>&1 || {
  log "python3 not found: install Python 3.9+ (Debian/Ubuntu: apt-get install python3 python3-venv; RHEL/Fedora: dnf install python3, CentOS 7: yum install python3)"
  exit 1
}
if [ ! -x "$python" ]; then
  log "creating $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2; then
    log "python3 -m venv failed: install the venv module (Debian/Ubuntu: apt-get install python3-venv; RHEL/Fedora: dnf install python3, CentOS 7: yum install python3)"
    exit 1
  fi
fi

log "pip install box-sdk-gen[jwt]==$version"
pip_log="$(mktemp)"
trap 'rm -f "$pip_log"' EXIT
set +e
"$python" -m pip install --disable-pip-version-check --quiet --timeout 20 --retries 1 \
  "box-sdk-gen[jwt]==$version" >"$pip_log" 2>&1
rc=$?
set -e
cat "$pip_log" >&2
if [ "$rc" -ne 0 ]; then
  # pip reports an unreachable index as connection/resolution failures, then "No matching
  # distribution" because it saw no versions at all.
  if grep -Eqi 'NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|ConnectTimeout|Connection refused|Network is unreachable|ProxyError|Could not fetch URL|SSLError|ReadTimeoutError' "$pip_log"; then
    log "the Python package index is unreachable"
    exit 3
  fi
  log "pip install failed (exit $rc)"
  exit 1
fi
touch "$stamp"
printf '%s\n' "$(cd "$venv" && pwd)/bin/python"
