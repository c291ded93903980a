#!/usr/bin/env bash
# Run the whole test suite: unit, integration and end-to-end tests (real binaries against the
# sandbox and a real PostgreSQL, one fresh database per test, real ffprobe).
#
#   scripts/test.sh                      # everything
#   scripts/test.sh naming               # cargo test filter
#   scripts/test.sh -p scaling-core -- --nocapture
#
# Arguments before `--` go to `cargo test`, arguments after it to the test binaries.
# PostgreSQL, ffprobe and chromium (the status page test) are found or set up by scripts/lib.sh (DATABASE_URL, else
# 127.0.0.1:5432, else a private cluster in target/pg); CS_TEST_THREADS sets the parallelism
# (default 2). `.ci/run` runs exactly this script.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

cs_t0=$SECONDS
cs_build_secs=0
cs_test_secs=0

# shellcheck disable=SC2317 # invoked by the EXIT trap
cs_report_timing() {
  local rc=$?
  local total=$((SECONDS - cs_t0))
  local verdict="ok"
  [ "$rc" -eq 0 ] || verdict="FAILED (exit $rc)"
  printf '==> test.sh: %s in %dm%02ds (prepare %ds, build %ds, tests %ds)\n' \
    "$verdict" $((total / 60)) $((total % 60)) \
    $((total - cs_build_secs - cs_test_secs)) "$cs_build_secs" "$cs_test_secs" >&2
}
trap cs_report_timing EXIT

cargo_args=()
test_args=()
seen_sep=0
for arg in "$@"; do
  if [ "$seen_sep" -eq 0 ] && [ "$arg" = "--" ]; then
    seen_sep=1
  elif [ "$seen_sep" -eq 0 ]; then
    cargo_args+=("$arg")
  else
    test_args+=("$arg")
  fi
done
# `-p NAME` narrows the run to packages; otherwise the whole workspace.
scope=(--workspace)
for arg in "${cargo_args[@]}"; do
  case "$arg" in
    -p | -p* | --package | --package=*) scope=() ;;
  esac
done
threads_given=0
for arg in "${test_args[@]}"; do
  case "$arg" in
    --test-threads | --test-threads=*) threads_given=1 ;;
  esac
done
if [ "$threads_given" -eq 0 ]; then
  test_args+=("--test-threads=${CS_TEST_THREADS:-2}")
fi
# No test is #[ignore]d (the sandbox starts in-process through sandbox::launch); a test that
# somebody marks so still runs here.
test_args+=("--include-ignored")

command -v cargo >/dev/null 2>&1 || cs_die "cargo not found: install Rust (https://rustup.rs) and rerun"
cs_log "$(cargo --version), $(rustc --version)"
cs_ensure_ffprobe
cs_ensure_chromium
cs_ensure_postgres

# The crash tests abort the binaries at their crash points: build everything with the
# `failpoints` feature (inert unless FAILPOINTS is set), tests and binaries alike, so the test
# run reuses this build.
features=(--features scaling-core/failpoints)
cs_log "cargo build --workspace --all-targets ${features[*]}"
t=$SECONDS
cargo build --workspace --all-targets "${features[@]}"
# The workspace lints ([workspace.lints] in Cargo.toml): any warning fails the run.
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cs_log "cargo clippy --workspace --all-targets ${features[*]} -- -D warnings"
cargo clippy --workspace --all-targets "${features[@]}" -- -D warnings
cs_build_secs=$((SECONDS - t))

# --no-fail-fast: run every test binary even after one fails, so one run shows every failure.
cs_log "cargo test ${scope[*]} --all-targets ${features[*]} --no-fail-fast ${cargo_args[*]} -- ${test_args[*]}"
t=$SECONDS
status=0
cargo test "${scope[@]}" --all-targets "${features[@]}" --no-fail-fast "${cargo_args[@]}" -- "${test_args[@]}" || status=$?
# The OTMM dialect matrix (issue 12): the main flow again against each other server variant the
# sandbox plays (`sandbox serve --otmm-dialect`), with the dam.api settings that match it
# (tests/e2e/util.rs `dialect_settings`). The full run above used the default, strict. Only on a
# whole-suite run (no filter, no -p).
if [ "${#cargo_args[@]}" -eq 0 ] && [ "${CS_SKIP_DIALECT_MATRIX:-0}" != 1 ]; then
  for dialect in jobs locking; do
    cs_log "dialect matrix: CS_OTMM_DIALECT=$dialect cargo test --test e2e -- flow::"
    CS_OTMM_DIALECT=$dialect cargo test -p content-scaling-tests --test e2e "${features[@]}" -- "${test_args[@]}" flow:: || status=$?
  done
fi
cs_test_secs=$((SECONDS - t))
exit "$status"
