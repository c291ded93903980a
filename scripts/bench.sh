#!/usr/bin/env bash
# Scenario benchmark (issues 5, 15): throughput near the Box rate limit, the cost of an idle pass,
# bytes through a pass against curl, and a1-to-a2 on a 100-master campaign. Not a test: it
# measures and prints a table, and writes target/bench/results.json so runs can be compared.
#
#   scripts/bench.sh                      # everything (about 10 minutes after the build)
#   scripts/bench.sh --only idle,history  # some scenarios (idle, history, backlog, unlimited, bytes,
#                                         # masters, bigmaster, latency)
#   scripts/bench.sh --files 100 --big-mb 200 --latency-uploads 10
#
# Builds the release binaries (sandbox included: the server side should not be the bottleneck),
# finds or starts PostgreSQL and installs ffmpeg when missing (scripts/lib.sh), then runs
# scripts/bench.py, which describes each scenario. Needs python3 and curl.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

cs_ensure_postgres
cs_ensure_ffprobe
command -v ffmpeg >/dev/null 2>&1 || cs_die "ffmpeg not found (it comes with ffprobe: install ffmpeg)"
command -v python3 >/dev/null 2>&1 || cs_die "python3 is needed to drive the benchmark"
command -v curl >/dev/null 2>&1 || cs_die "curl is needed for the byte-transfer baseline"

cs_log "cargo build --release (a1-to-a2, box-poll, sandbox)"
cargo build --release --quiet -p a1-to-a2 -p box-poll -p sandbox
exec python3 scripts/bench.py --bin "${CARGO_TARGET_DIR:-$root/target}/release" --admin-url "$DATABASE_URL" "$@"
