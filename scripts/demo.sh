#!/usr/bin/env bash
# The whole main flow on this machine: a campaign goes A1 -> A2 -> A3 against the sandbox
# (local Box + OTMM + Mailgun + webhook emulator) and a real PostgreSQL.
#
#   scripts/demo.sh           # run the demo; the sandbox stops at the end
#   scripts/demo.sh --keep    # leave the sandbox running and print its environment as
#                             # `export` lines (also in target/demo/env.sh): replay any step by hand
#
# Finds or starts PostgreSQL (DATABASE_URL, else 127.0.0.1:5432, else a private cluster),
# installs ffprobe when missing, builds the workspace, starts the sandbox with the demo
# scenario, runs a1-to-a2, uploads agency derivatives (valid V2 names for every master, one
# invalid name, one unknown tracking ID), runs box-poll and prints a summary. Exits non-zero
# when the campaign did not reach A3.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

keep=0
case "${1:-}" in
  --keep) keep=1 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--keep]" >&2; exit 2 ;;
esac

started=$(date +%s.%N)
cs_ensure_postgres
cs_ensure_ffprobe
command -v python3 >/dev/null || { echo "demo: python3 is needed to read the sandbox's JSON" >&2; exit 1; }

media="$root/../shared/fixtures/media"
for file in bigbuckbunny.mp4 coffee.png rocket.jpg; do
  [ -f "$media/$file" ] || { echo "demo: fixture $media/$file is missing (the demo uses the real media in ../shared/fixtures/media)" >&2; exit 1; }
done

cs_log "building the workspace"
cargo build --workspace --quiet
bin="$root/target/debug"

work="$root/target/demo"
rm -rf "$work"
mkdir -p "$work/sandbox" "$work/tmp"
chmod 700 "$work/tmp"

# A fresh database for the demo.
demo_db="cs_demo"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS $demo_db WITH (FORCE)" -c "CREATE DATABASE $demo_db" >/dev/null
demo_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$demo_db")

cs_log "starting the sandbox"
"$bin/sandbox" serve --listen 127.0.0.1:0 --state-dir "$work/sandbox" \
  --scenario "$root/crates/sandbox/scenarios/demo.yaml" --env-file "$work/sandbox.env" \
  >"$work/ready.json" 2>"$work/sandbox.log" &
sandbox_pid=$!
if [ "$keep" -eq 0 ]; then
  trap 'kill "$sandbox_pid" 2>/dev/null || true' EXIT
else
  # On failure the sandbox goes too; on success it stays for the operator.
  trap '[ "$?" -eq 0 ] || kill "$sandbox_pid" 2>/dev/null || true' EXIT
fi
for _ in $(seq 1 600); do
  [ -s "$work/ready.json" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$work/sandbox.log" >&2; echo "demo: the sandbox did not start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/ready.json" ] || { echo "demo: the sandbox did not become ready" >&2; exit 1; }

ready() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1])); print(eval("v" + sys.argv[2]))' "$work/ready.json" "$1"; }
control_url=$(ready '["control_url"]')
# The binaries' environment: this demo's config, database and temp dir, and the sandbox's URLs,
# IDs and credentials (written by `sandbox serve --env-file`, the same mapping the tests use).
{
  printf "export CS_CONFIG_DIR='%s' CS_ENVIRONMENT=sandbox DATABASE_URL='%s' CS_TEMP_DIR='%s'\n" \
    "$root/config" "$demo_url" "$work/tmp"
  cat "$work/sandbox.env"
} >"$work/env.sh"
chmod 600 "$work/env.sh"
# shellcheck source=/dev/null
source "$work/env.sh"
watched="$BOX_WATCHED_FOLDER_ID"

cs_log "a1-to-a2: masters from the DAM into Box with tracking IDs"
"$bin/a1-to-a2"

# The agency: reads the tracking IDs from the master names in Box and delivers derivatives.
curl_state() { python3 -c 'import json, sys, urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1] + "/state"))))' "$control_url"; }
curl_state >"$work/state-a2.json"
python3 - "$work/state-a2.json" "$BOX_ROOT_FOLDER_ID" >"$work/masters.txt" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
root = sys.argv[2]
campaign_folders = {f["id"] for f in state["box"]["folders"] if f.get("parent_id") == root}
for f in state["box"]["files"]:
    if f.get("parent_id") in campaign_folders:
        print(f["name"][:6], f["name"][7:])
PY
cs_log "agency uploads derivatives into the watched folder"
uploads=0
while read -r tracking_id master; do
  case "$master" in
    *.mp4) source="$media/bigbuckbunny.mp4"; kind=video; ext=mp4 ;;
    *.png) source="$media/coffee.png"; kind=image; ext=png ;;
    *) source="$media/rocket.jpg"; kind=banner; ext=jpg ;;
  esac
  for language in IT de FR; do
    "$bin/sandbox" agency-upload --control-url "$control_url" --folder-id "$watched" \
      --name "${tracking_id}_Breakfast-Moments_${kind}_${language}_9x16-15s_v01.${ext}" "$source" >/dev/null
    uploads=$((uploads + 1))
  done
done <"$work/masters.txt"
"$bin/sandbox" agency-upload --control-url "$control_url" --folder-id "$watched" \
  --name "Breakfast_video_ITA_v1.mp4" "$media/bigbuckbunny.mp4" >/dev/null
"$bin/sandbox" agency-upload --control-url "$control_url" --folder-id "$watched" \
  --name "ZZZZZZ_Breakfast-Moments_video_IT_9x16-15s_v01.mp4" "$media/bigbuckbunny.mp4" >/dev/null
echo "  $uploads valid derivatives, 1 invalid name, 1 unknown tracking ID" >&2

cs_log "box-poll: derivatives from Box into the DAM's Final Assets"
"$bin/box-poll"

finished=$(date +%s.%N)
curl_state >"$work/state-a3.json"
python3 -c 'import json, sys, urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1] + "/stats"))))' "$control_url" >"$work/stats.json"
python3 - "$work/state-a3.json" "$work/stats.json" "$started" "$finished" <<'PY'
import json, sys
state, stats = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
wall = float(sys.argv[4]) - float(sys.argv[3])
folders = {f["id"]: f for f in state["dam"]["folders"]}
campaign = next(f for f in state["dam"]["folders"] if f.get("status"))
number = campaign["fields"].get("FERRERO.FIELD.CAMPAIGN NUMBER", campaign["name"])
final = next(f for f in state["dam"]["folders"] if f.get("parent_id") == campaign["id"] and f["name"] == "Final Assets")
delivered = [a for a in state["dam"]["assets"] if a.get("folder_id") == final["id"]]
box_folders = {f["id"]: f for f in state["box"]["folders"]}
rejected = [f for f in state["box"]["files"]
            if box_folders.get(f.get("parent_id"), {}).get("name") == "_errors" and not f["name"].endswith(".error.txt")]
history = [str(c.get("from")) + " -> " + str(c.get("to")) for c in state["dam"].get("status_changes", []) if c.get("folder_id", campaign["id"]) == campaign["id"]]
print()
print("Campaign %s (%s): status %s" % (number, campaign["name"], campaign["status"]))
print("  status changes: %s" % (", ".join(history) or "none"))
print("  derivatives in the DAM's Final Assets:")
for asset in sorted(delivered, key=lambda a: a["name"]):
    f = asset.get("fields", {})
    print("    %-45s lang=%s type=%s duration=%s" % (asset["name"], f.get("MAIN_LANGUAGES"), f.get("FERRERO.FIELD.MKTG.ASSET TYPE"),
          f.get("FERRERO.MARKETING.FIELD.DURATION_SECONDS", "-")))
print("  rejected into _errors/ (with a .error.txt note each):")
for f in rejected:
    print("    " + f["name"])
print("  emails sent: %d; webhooks received: %d" % (len(state.get("emails", [])), len(state.get("webhooks", []))))
box_requests, dam_requests = stats.get("box_requests", 0), stats.get("dam_requests", 0)
if delivered:
    print("  requests: Box %d, DAM %d in all; per delivered derivative (whole demo): Box %.1f, DAM %.1f"
          % (box_requests, dam_requests, box_requests / len(delivered), dam_requests / len(delivered)))
print("  wall time: %.1f s" % wall)
print()
print("demo: campaign %s %s, %d derivatives delivered, %d rejected"
      % (number, " -> ".join(["A1", "A2", "A3"][: 1 + len(history)]), len(delivered), len(rejected)))
sys.exit(0 if campaign["status"] == "A3" else 1)
PY
if [ "$keep" -eq 1 ]; then
  cat >&2 <<EOF

The sandbox is still running (pid $sandbox_pid; stop it with: kill $sandbox_pid).
Its control API: $control_url  (GET $control_url/state shows Box and the DAM as JSON)
Replay any step by hand in a shell with this environment (also in $work/env.sh):

EOF
  cat "$work/env.sh"
  cat >&2 <<EOF

then, for example:
  $bin/reprocess status
  $bin/sandbox agency-upload --control-url $control_url --folder-id \$BOX_WATCHED_FOLDER_ID --name NAME FILE
  $bin/box-poll -v
EOF
fi
