# shellcheck shell=bash
# Helpers sourced by scripts/*.sh (demo.sh, test.sh): logging, ffprobe and PostgreSQL preparation.
#
#   source "$(dirname "$0")/lib.sh"
#   cs_ensure_ffprobe    # ffprobe on PATH, installing Debian's ffmpeg when root/sudo can
#   cs_ensure_chromium   # /usr/bin/chromium (status page browser test), installing Debian's chromium
#   cs_ensure_postgres   # exports DATABASE_URL and CS_TEST_DATABASE_URL (an admin URL)
#
# PostgreSQL, in this order:
#   1. DATABASE_URL when set (must answer `select 1`, else this fails: it was asked for explicitly);
#   2. postgres://postgres@127.0.0.1:5432/postgres (skipped when CS_PG_FORCE_PRIVATE=1);
#   3. a private cluster in target/pg (trust auth, 127.0.0.1 only, port CS_PG_PORT or the next free
#      one from 55432, socket inside target/pg), started from the machine's PostgreSQL binaries,
#      installed with apt-get when there are none and we are root (or have password-less sudo).
#      Reused when already running; stop it with cs_stop_private_postgres.
#
# Knobs: CS_PG_FORCE_PRIVATE=1, CS_PG_PORT (first port tried, default 55432), CS_PG_DIR (default
# <repo>/target/pg), PGCONNECT_TIMEOUT (default 3 s for the probes).
#
# The caller sets `set -euo pipefail`; these functions exit the script on a fatal problem.

CS_ROOT="${CS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
CS_PG_DIR="${CS_PG_DIR:-$CS_ROOT/target/pg}"
CS_PG_PORT="${CS_PG_PORT:-55432}"
CS_APT_UPDATED="${CS_APT_UPDATED:-0}"

# Print "==> message" to stderr.
cs_log() {
  printf '==> %s\n' "$*" >&2
}

# Print "error: message" to stderr and exit 1.
cs_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

cs_is_root() {
  [ "$(id -u)" -eq 0 ]
}

# Run a command as root: directly when root, else with password-less sudo; fails otherwise.
cs_as_root() {
  if cs_is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

# True when packages can be installed with apt-get (Debian/Ubuntu, as root or with sudo -n).
cs_can_apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  cs_is_root && return 0
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null
}

# apt-get install -y PACKAGE... (runs `apt-get update` once per script run first).
cs_apt_install() {
  if [ "$CS_APT_UPDATED" != 1 ]; then
    cs_log "apt-get update"
    cs_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
      || cs_die "apt-get update failed"
    CS_APT_UPDATED=1
  fi
  cs_log "apt-get install $*"
  cs_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || cs_die "apt-get install $* failed"
}

# Make sure `ffprobe` (from ffmpeg) is on PATH.
cs_ensure_ffprobe() {
  if command -v ffprobe >/dev/null 2>&1; then
    cs_log "ffprobe: $(command -v ffprobe) ($(ffprobe -version 2>/dev/null | head -n1 | cut -d' ' -f1-3))"
    return 0
  fi
  if cs_can_apt_install; then
    cs_log "ffprobe not found: installing ffmpeg"
    cs_apt_install ffmpeg
    command -v ffprobe >/dev/null 2>&1 || cs_die "ffmpeg was installed but ffprobe is still not on PATH"
    return 0
  fi
  cs_die "ffprobe not found. Install ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg; Fedora/RHEL: sudo dnf install ffmpeg; CentOS 7: sudo yum install ffmpeg (both from RPM Fusion); macOS: brew install ffmpeg) and rerun."
}

# Make sure a headless browser is there for the status page test (tests/e2e/status.rs):
# Debian's `chromium` at /usr/bin/chromium (or CS_CHROMIUM), installed with apt-get when root/sudo
# can. Exports CS_CHROMIUM. Not fatal when it cannot be installed: the test then fails under CI=true
# and says why elsewhere.
cs_ensure_chromium() {
  local browser="${CS_CHROMIUM:-/usr/bin/chromium}"
  if [ ! -x "$browser" ] && cs_can_apt_install; then
    cs_log "chromium not found: installing Debian's chromium (for the status page test)"
    cs_apt_install chromium
  fi
  if [ -x "$browser" ]; then
    export CS_CHROMIUM="$browser"
    cs_log "chromium: $browser ($("$browser" --version 2>/dev/null | head -n1))"
  else
    cs_log "chromium not found and cannot be installed (Debian/Ubuntu: sudo apt-get install chromium; Fedora/RHEL: sudo dnf install chromium): the status page browser test will fail"
  fi
}

# Make sure the `psql` client is on PATH.
cs_ensure_psql() {
  command -v psql >/dev/null 2>&1 && return 0
  if cs_can_apt_install; then
    cs_log "psql not found: installing postgresql-client"
    cs_apt_install postgresql-client
    command -v psql >/dev/null 2>&1 && return 0
  fi
  cs_die "psql not found. Install the PostgreSQL client (Debian/Ubuntu: sudo apt-get install postgresql-client; RHEL/Fedora: sudo dnf install postgresql, CentOS 7: sudo yum install postgresql) and rerun."
}

# Print URL with its password replaced by ****.
cs_redact_url() {
  printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:****@#'
}

# True when `psql URL -c 'select 1'` works within PGCONNECT_TIMEOUT (default 3 s).
cs_pg_ok() {
  PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-3}" psql "$1" -X -q -A -t -c 'select 1' >/dev/null 2>&1 </dev/null
}

# Export DATABASE_URL and CS_TEST_DATABASE_URL pointing at a PostgreSQL admin URL (see the header).
cs_ensure_postgres() {
  cs_ensure_psql
  if [ -n "${DATABASE_URL:-}" ]; then
    if cs_pg_ok "$DATABASE_URL"; then
      cs_log "PostgreSQL: using DATABASE_URL $(cs_redact_url "$DATABASE_URL")"
      export DATABASE_URL
      export CS_TEST_DATABASE_URL="$DATABASE_URL"
      return 0
    fi
    cs_die "DATABASE_URL is set but PostgreSQL does not answer there: $(cs_redact_url "$DATABASE_URL") (fix it, or unset DATABASE_URL to use 127.0.0.1:5432 or a private cluster)"
  fi
  local url="postgres://postgres@127.0.0.1:5432/postgres"
  if [ "${CS_PG_FORCE_PRIVATE:-0}" != 1 ] && cs_pg_ok "$url"; then
    cs_log "PostgreSQL: using $url"
    export DATABASE_URL="$url"
    export CS_TEST_DATABASE_URL="$url"
    return 0
  fi
  cs_start_private_postgres
}

# Print the directory holding initdb and pg_ctl (PATH, /usr/lib/postgresql/*/bin newest first,
# /usr/local/bin, /usr/local/pgsql/bin, /usr/pgsql-*/bin); fails when there is none.
cs_find_pg_bin() {
  local candidates=() versioned=() d
  if command -v initdb >/dev/null 2>&1; then
    candidates+=("$(dirname "$(command -v initdb)")")
  fi
  for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin; do
    [ -d "$d" ] && versioned+=("$d")
  done
  if [ "${#versioned[@]}" -gt 0 ]; then
    while IFS= read -r d; do
      candidates+=("$d")
    done < <(printf '%s\n' "${versioned[@]}" | sort -rV)
  fi
  candidates+=(/usr/local/bin /usr/local/pgsql/bin)
  for d in "${candidates[@]}"; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 1
}

# Run a command as user $1 (root only; runuser, else su).
cs_run_as() {
  local user="$1"
  shift
  # From / so that a working directory closed to $user does not matter.
  if command -v runuser >/dev/null 2>&1; then
    (cd / && runuser -u "$user" -- "$@")
  else
    (cd / && su -s /bin/sh "$user" -c "$(printf '%q ' "$@")")
  fi
}

# The user that owns and runs the private cluster: ourselves, or (as root, since initdb refuses
# root) the `postgres` system user, created as `cs-postgres` when there is none.
cs_pg_user() {
  if ! cs_is_root; then
    id -un
    return 0
  fi
  if id postgres >/dev/null 2>&1; then
    printf 'postgres\n'
    return 0
  fi
  if ! id cs-postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin cs-postgres >&2 \
      || cs_die "cannot create user cs-postgres to run PostgreSQL (initdb refuses to run as root)"
  fi
  printf 'cs-postgres\n'
}

# Run a PostgreSQL server binary as the cluster's user.
cs_pg_exec() {
  local user="$1"
  shift
  if [ "$user" = "$(id -un)" ]; then
    "$@"
  else
    cs_run_as "$user" "$@"
  fi
}

# True when TCP port $1 on 127.0.0.1 accepts connections.
cs_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Start (or reuse) the private cluster in CS_PG_DIR; exports DATABASE_URL and CS_TEST_DATABASE_URL.
cs_start_private_postgres() {
  local bin user data sock log port_file port url
  if ! bin="$(cs_find_pg_bin)"; then
    if cs_can_apt_install; then
      cs_log "no PostgreSQL server binaries found: installing postgresql"
      cs_apt_install postgresql
    fi
    bin="$(cs_find_pg_bin)" || cs_die "no PostgreSQL server found (initdb/pg_ctl). Install PostgreSQL (Debian/Ubuntu: sudo apt-get install postgresql; RHEL/Fedora: sudo dnf install postgresql-server, CentOS 7: sudo yum install postgresql-server), or set DATABASE_URL to a server where the user may create databases."
  fi
  user="$(cs_pg_user)"
  mkdir -p "$CS_PG_DIR"
  if [ "$user" != "$(id -un)" ]; then
    chown "$user" "$CS_PG_DIR"
    if ! cs_run_as "$user" test -w "$CS_PG_DIR"; then
      # A parent directory is closed to $user (e.g. a clone under /root): use a private temp dir.
      CS_PG_DIR="${TMPDIR:-/tmp}/content-scaling-pg-$(printf '%s' "$CS_ROOT" | cksum | cut -d' ' -f1)"
      mkdir -p "$CS_PG_DIR"
      chown "$user" "$CS_PG_DIR"
      chmod 700 "$CS_PG_DIR"
      cs_log "$user cannot write under $CS_ROOT/target: private cluster lives in $CS_PG_DIR"
    fi
  fi
  data="$CS_PG_DIR/data"
  sock="$CS_PG_DIR/sock"
  log="$CS_PG_DIR/postgres.log"
  port_file="$CS_PG_DIR/port"

  # Reuse a running cluster.
  if [ -f "$data/PG_VERSION" ] && [ -f "$port_file" ] \
    && cs_pg_exec "$user" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    port="$(cat "$port_file")"
    url="postgres://postgres@127.0.0.1:$port/postgres"
    if cs_pg_ok "$url"; then
      cs_log "PostgreSQL: reusing private cluster $url ($data)"
      export DATABASE_URL="$url"
      export CS_TEST_DATABASE_URL="$url"
      return 0
    fi
    cs_log "private cluster in $data runs but does not answer on port $port: restarting it"
    cs_pg_exec "$user" "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi

  if [ ! -f "$data/PG_VERSION" ]; then
    cs_log "initdb $data ($("$bin/initdb" --version 2>/dev/null || true), user $user)"
    rm -rf "$data"
    mkdir -p "$data"
    [ "$user" = "$(id -un)" ] || chown "$user" "$data"
    chmod 700 "$data"
    cs_pg_exec "$user" "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C >"$CS_PG_DIR/initdb.log" 2>&1 \
      || cs_die "initdb failed, see $CS_PG_DIR/initdb.log"
  fi
  mkdir -p "$sock"
  [ "$user" = "$(id -un)" ] || chown "$user" "$sock"

  port="$CS_PG_PORT"
  while cs_port_in_use "$port"; do
    port=$((port + 1))
    [ "$port" -lt $((CS_PG_PORT + 100)) ] || cs_die "no free port in $CS_PG_PORT..$((CS_PG_PORT + 99)) for the private PostgreSQL"
  done
  [ "$user" = "$(id -un)" ] || { touch "$log" && chown "$user" "$log"; }
  cs_log "starting private PostgreSQL on 127.0.0.1:$port (log $log)"
  # fsync off: a throw-away test cluster trades durability for speed.
  if ! cs_pg_exec "$user" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null; then
    tail -n 20 "$log" >&2 || true
    cs_die "private PostgreSQL did not start (log: $log)"
  fi
  printf '%s\n' "$port" >"$port_file"
  url="postgres://postgres@127.0.0.1:$port/postgres"
  local i
  for i in $(seq 1 30); do
    cs_pg_ok "$url" && break
    [ "$i" -lt 30 ] || cs_die "private PostgreSQL started but does not answer on $url (log: $log)"
    sleep 1
  done
  cs_log "PostgreSQL: private cluster $url"
  export DATABASE_URL="$url"
  export CS_TEST_DATABASE_URL="$url"
}

# Stop the private cluster started by cs_start_private_postgres (no-op when none runs).
cs_stop_private_postgres() {
  local dir data bin user
  for dir in "$CS_PG_DIR" "${TMPDIR:-/tmp}/content-scaling-pg-$(printf '%s' "$CS_ROOT" | cksum | cut -d' ' -f1)"; do
    data="$dir/data"
    [ -f "$data/postmaster.pid" ] || continue
    bin="$(cs_find_pg_bin)" || cs_die "cannot find pg_ctl to stop the private cluster in $data"
    user="$(stat -c %U "$data")"
    if cs_pg_exec "$user" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      cs_log "stopping private PostgreSQL ($data)"
      cs_pg_exec "$user" "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    # Forget the URL of the cluster just stopped, so a later cs_ensure_postgres starts afresh.
    if [ -f "$dir/port" ] && [ "${DATABASE_URL:-}" = "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres" ]; then
      unset DATABASE_URL CS_TEST_DATABASE_URL
    fi
  done
}
