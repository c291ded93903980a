#!/usr/bin/env bash
# Peak memory (maximum resident set size) of `a1-to-a2` and `box-poll` moving a big file through
# the sandbox: a master of SIZE MB goes DAM -> Box (a1-to-a2: streamed download from the DAM,
# chunked upload session to Box) and a derivative of SIZE MB goes Box -> DAM (box-poll: streamed
# download from Box with SHA-1 check, ffprobe, streamed multipart import into the DAM).
# Not a test: it prints the figures, e.g.
#
#   bench-memory:          a1-to-a2                        box-poll
#   bench-memory: size     peak RSS   with kids  time      peak RSS   with kids  time
#   bench-memory: 100 MB   11.5 MB    11.5 MB    0:03.19   12.0 MB    52.3 MB    0:02.86
#
# "peak RSS" is the binary's own high-water mark (VmHWM sampled from /proc); "with kids" is GNU
# time's maximum resident set size, which also covers the children (box-poll runs ffprobe, about
# 50 MB by itself).
#
#   scripts/bench-memory.sh            # 100 MB and 1000 MB (1 GB)
#   scripts/bench-memory.sh 100 5000   # sizes in MB
#
# Builds release binaries of a1-to-a2 and box-poll (the sandbox is the debug build: it is not
# measured), finds or starts PostgreSQL (scripts/lib.sh), installs ffmpeg and GNU time when
# missing (apt, as root), generates the media with ffmpeg (raw 1280x720 video, valid for ffprobe)
# under target/bench-memory/ and removes them at the end.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

sizes=("$@")
[ "${#sizes[@]}" -gt 0 ] || sizes=(100 1000)

cs_ensure_postgres
cs_ensure_ffprobe
command -v ffmpeg >/dev/null 2>&1 || cs_die "ffmpeg not found (it comes with ffprobe: install ffmpeg)"
command -v python3 >/dev/null 2>&1 || cs_die "python3 is needed to read the sandbox's JSON"
if [ ! -x /usr/bin/time ]; then
  cs_can_apt_install || cs_die "/usr/bin/time not found: install GNU time (Debian/Ubuntu: sudo apt-get install time; RHEL/Fedora: sudo dnf install time, CentOS 7: sudo yum install time)"
  cs_apt_install time
fi

cs_log "cargo build --release -p a1-to-a2 -p box-poll"
cargo build --release --quiet -p a1-to-a2 -p box-poll
cs_log "cargo build -p sandbox"
cargo build --quiet -p sandbox
release="$root/target/release"
sandbox_bin="$root/target/debug/sandbox"

work="$root/target/bench-memory"
rm -rf "$work"
mkdir -p "$work"
sandbox_pid=""
cleanup() {
  if [ -n "$sandbox_pid" ]; then kill "$sandbox_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1280x720 uyvy422 raw video: 1,843,200 bytes per frame.
frame_bytes=1843200
json() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1])); print(eval("v" + sys.argv[2]))' "$1" "$2"; }
peak_kb() { sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$1"; }
# Runs "$@" under /usr/bin/time -v (report in $1) with the sandbox environment and samples the
# binary's own high-water mark (VmHWM of /proc/PID/status, every 20 ms) into $2, in kB: GNU time's
# figure also covers children (ffprobe, about 50 MB on its own), VmHWM only the binary.
measure() {
  local time_file=$1 hwm_file=$2
  shift 2
  env "${env_vars[@]}" /usr/bin/time -v "$@" 2>"$time_file" &
  local time_pid=$! child="" hwm=0 value
  while kill -0 "$time_pid" 2>/dev/null; do
    if [ -z "$child" ]; then
      child=$(cut -d' ' -f1 "/proc/$time_pid/task/$time_pid/children" 2>/dev/null || true)
    fi
    if [ -n "$child" ]; then
      value=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$child/status" 2>/dev/null || true)
      if [ -n "$value" ] && [ "$value" -gt "$hwm" ]; then hwm=$value; fi
    fi
    sleep 0.02
  done
  printf '%s\n' "$hwm" >"$hwm_file"
  wait "$time_pid"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
elapsed() { sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$1"; }

results=()
for size in "${sizes[@]}"; do
  dir="$work/$size"
  mkdir -p "$dir/state" "$dir/tmp"
  chmod 700 "$dir/tmp"
  frames=$(( (size * 1000000 + frame_bytes - 1) / frame_bytes ))
  cs_log "$size MB: generating media ($frames frames each)"
  ffmpeg -v error -y -f lavfi -i testsrc=size=1280x720:rate=25 -frames:v "$frames" -c:v rawvideo -pix_fmt uyvy422 "$dir/master.mov"
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=25 -frames:v "$frames" -c:v rawvideo -pix_fmt uyvy422 "$dir/derivative.mov"
  cat >"$dir/scenario.yaml" <<EOF
box:
  campaigns_folder: Campaigns
  watched_folders: [incoming]
dam:
  import_delay_ms: 100
  campaigns:
    - number: C-2026-0900
      name: Memory Bench
      status: A1
      masters:
        - name: Bench_Master.mov
          file: $dir/master.mov
          mime_type: video/quicktime
          fields:
            ARTESIA.FIELD.ASSET NAME: Bench_Master.mov
            FERRERO.FIELD.MKTG.ASSET TYPE: {value: video, display: Video}
            MAIN_LANGUAGES: {value: EN, display: English}
EOF

  db="cs_bench_memory_$size"
  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  db_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$db")

  "$sandbox_bin" serve --listen 127.0.0.1:0 --state-dir "$dir/state" --scenario "$dir/scenario.yaml" \
    >"$dir/ready.json" 2>"$dir/sandbox.log" &
  sandbox_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$dir/ready.json" ] && break
    kill -0 "$sandbox_pid" 2>/dev/null || { cat "$dir/sandbox.log" >&2; cs_die "the sandbox did not start"; }
    sleep 0.1
  done
  [ -s "$dir/ready.json" ] || cs_die "the sandbox did not become ready"
  ready="$dir/ready.json"
  control_url=$(json "$ready" '["control_url"]')
  watched=$(json "$ready" '["watched_folder_ids"][0]')
  env_vars=(
    CS_CONFIG_DIR="$root/config" CS_ENVIRONMENT=sandbox DATABASE_URL="$db_url" CS_TEMP_DIR="$dir/tmp"
    BOX_API_BASE_URL="$(json "$ready" '["base_url"]')" BOX_UPLOAD_BASE_URL="$(json "$ready" '["upload_url"]')"
    BOX_OAUTH2_URL="$(json "$ready" '["oauth2_url"]')" BOX_CONFIG_FILE="$(json "$ready" '["box_app_config"]')"
    BOX_ROOT_FOLDER_ID="$(json "$ready" '["box_root_folder_id"]')" BOX_WATCHED_FOLDER_ID="$watched"
    DAM_BASE_URL="$(json "$ready" '["dam_url"]')" DAM_USERNAME="$(json "$ready" '["dam_username"]')"
    DAM_PASSWORD="$(json "$ready" '["dam_password"]')" MAILGUN_BASE_URL="$(json "$ready" '["mailgun_url"]')"
    MAILGUN_DOMAIN="$(json "$ready" '["mailgun_domain"]')" MAILGUN_API_KEY="$(json "$ready" '["mailgun_api_key"]')"
    WEBHOOK_BASE_URL="$(json "$ready" '["webhook_url"]')" RUST_LOG=warn
  )

  cs_log "$size MB: a1-to-a2 (DAM -> Box, chunked upload)"
  measure "$dir/a1.time" "$dir/a1.hwm" "$release/a1-to-a2" \
    || { cat "$dir/a1.time" >&2; cs_die "a1-to-a2 failed"; }
  python3 - "$control_url" "$dir/master.mov" <<'PY'
import hashlib, json, sys, urllib.request
state = json.load(urllib.request.urlopen(sys.argv[1] + "/state"))
sha1 = hashlib.sha1()
with open(sys.argv[2], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        sha1.update(block)
if not any(f.get("sha1") == sha1.hexdigest() for f in state["box"]["files"]):
    sys.exit("bench-memory: the master is not in Box with its sha1")
PY
  box_name=$(python3 -c 'import json, sys, urllib.request; s = json.load(urllib.request.urlopen(sys.argv[1] + "/state")); print([f["name"] for f in s["box"]["files"] if f["name"].endswith("_Bench_Master.mov")][0])' "$control_url")
  tracking=$(printf '%s' "${box_name:0:6}" | tr '[:upper:]' '[:lower:]')
  python3 -c 'import json, sys, urllib.request
body = json.dumps({"folder_id": sys.argv[2], "name": sys.argv[3], "source_path": sys.argv[4]}).encode()
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/agency-upload", body, {"Content-Type": "application/json"}))' \
    "$control_url" "$watched" "${tracking}_Memory-Bench_video_IT_9x16-15s_v01.mov" "$dir/derivative.mov"

  cs_log "$size MB: box-poll (Box -> DAM, streamed download and import)"
  measure "$dir/poll.time" "$dir/poll.hwm" "$release/box-poll" \
    || { cat "$dir/poll.time" >&2; cs_die "box-poll failed"; }
  python3 - "$control_url" "$dir/derivative.mov" <<'PY'
import hashlib, json, sys, urllib.request
state = json.load(urllib.request.urlopen(sys.argv[1] + "/state"))
sha1 = hashlib.sha1()
with open(sys.argv[2], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        sha1.update(block)
if not any(a.get("sha1") == sha1.hexdigest() for a in state["dam"]["assets"]):
    sys.exit("bench-memory: the derivative is not in the DAM with its sha1")
PY

  results+=("$(printf '%-8s %-10s %-10s %-9s %-10s %-10s %-9s' "$size MB" \
    "$(mb "$(cat "$dir/a1.hwm")")" "$(mb "$(peak_kb "$dir/a1.time")")" "$(elapsed "$dir/a1.time")" \
    "$(mb "$(cat "$dir/poll.hwm")")" "$(mb "$(peak_kb "$dir/poll.time")")" "$(elapsed "$dir/poll.time")")")

  kill "$sandbox_pid" 2>/dev/null || true
  wait "$sandbox_pid" 2>/dev/null || true
  sandbox_pid=""
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  rm -rf "$dir"
done

printf 'bench-memory: %-8s %-31s %s\n' "" "a1-to-a2" "box-poll"
printf 'bench-memory: %-8s %-10s %-10s %-9s %-10s %-10s %-9s\n' "size" "peak RSS" "with kids" "time" "peak RSS" "with kids" "time"
for line in "${results[@]}"; do
  printf 'bench-memory: %s\n' "$line"
done
