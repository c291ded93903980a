#!/usr/bin/env python3
"""Scenario benchmark of issue 5 (run by scripts/bench.sh, which builds the release binaries and
prepares PostgreSQL and ffmpeg first). Not a test: it measures and prints, it asserts nothing.

Each scenario gets a fresh sandbox (release build) and a fresh database:

1. idle: `box-poll` with nothing to do, 20 passes: median wall time, Box / DAM requests (sandbox
   counters) and database transactions (pg_stat_database) per pass, token reused.
2. backlog at 10/s: 500 derivatives (short H.264 videos and PNG/JPEG images made with ffmpeg)
   with the sandbox's Box rate limit at 10 requests/s (burst 10) and the client's the same;
   wall time against the floor `Box requests / 10`, as a ratio.
3. backlog unlimited: the same 500 files without a rate limit, 4 workers and 1 worker: files
   per second and CPU seconds per file (box-poll and its ffprobe children).
4. bytes: one 1 GB derivative Box -> DAM against `curl` downloading the same bytes from the
   sandbox's download URL plus `curl` uploading them to a plain upload endpoint; peak RSS.
5. a1-to-a2 on a campaign with 100 masters (4 workers and 1 worker; and under the 10/s limit).
6. bigmaster: a1-to-a2 on one campaign whose master is a 1 GB file (--big-mb): DAM download,
   chunked upload session to Box with 1 and with 4 parts in flight, against `curl` down + `curl`
   up of the same bytes; peak RSS.
7. latency: agency uploads (--latency-uploads, default 50, about 4 s apart) with box-poll run
   every 15 s: median and max time from the upload to the pass that created its DAM asset.

8. history: the idle `box-poll` pass on an empty history and after loading about 1,000,000
   rows of history (scripts/bench-history.sql: years of campaigns, deliveries, ledger rows,
   runs and notifications), median wall time and its ratio, and the database round trips of
   one idle pass counted by a TCP proxy in front of PostgreSQL (sslmode disable, so the
   protocol can be read; the connection's startup and the closing Terminate are not counted
   as round trips of the pass's statements, the startup is reported apart).

9. folders: idle box-poll passes with 1, 10 and 50 watched folders at the production limit
   (10 requests/s, burst 10, on both sides), with the events stream on and off: median wall and
   Box requests per pass.

Rate-limited scenarios set the same bucket on both sides: the sandbox's
`rate_limit_per_minute = 60 x limit, rate_limit_burst = BURST` and the client's
`box.max_requests_per_second = limit, box.burst = BURST`.

Results go to stdout as a table and to target/bench/results.json.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "fixtures" / "media"
FAST_SCENARIO_MASTERS = [
    ("Bench_Master.mp4", "bigbuckbunny.mp4", "video/mp4", "video"),
    ("Bench_KeyVisual.png", "coffee.png", "image/png", "image"),
    ("Bench_Poster.jpg", "rocket.jpg", "image/jpeg", "print"),
]


# Burst of the Box rate-limit bucket, on both sides (box.burst and the sandbox's).
BURST = 10


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def http_json(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        text = response.read()
    return json.loads(text) if text else None


# ----- PostgreSQL -------------------------------------------------------------------------------


def db_url_for(admin_url, name):
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def psql(admin_url, sql):
    out = subprocess.run(
        ["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def transactions(admin_url, name):
    """Committed + rolled back transactions of database `name` so far (pg_stat_database)."""
    value = psql(
        admin_url,
        "SELECT pg_stat_clear_snapshot(); SELECT xact_commit + xact_rollback "
        f"FROM pg_stat_database WHERE datname = '{name}'",
    )
    return int(value.splitlines()[-1] or 0)


class PgRoundTrips:
    """A TCP proxy in front of PostgreSQL that counts round trips: a round trip starts each time
    the client sends after the server has spoken (pipelined messages sent before any reply count
    once). The first message of a connection (its startup packet) and the client's Terminate are
    counted apart, as `startups`, and not at all."""

    TERMINATE = b"X\x00\x00\x00\x04"

    def __init__(self, admin_url):
        parts = urllib.parse.urlsplit(admin_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.round_trips = 0
        self.startups = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db_url):
        """`db_url` through this proxy, without TLS."""
        parts = urllib.parse.urlsplit(db_url)
        netloc = f"{parts.username}@127.0.0.1:{self.port}" if parts.username else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query="sslmode=disable"))

    def counts(self):
        with self.lock:
            return self.round_trips, self.startups

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        server = socket.create_connection(self.target)
        state = {"last": None, "first": True}

        def pump(src, dst, from_client):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if from_client:
                        with self.lock:
                            if state["first"]:
                                self.startups += 1
                                state["first"] = False
                            elif state["last"] != "client" and data != self.TERMINATE:
                                self.round_trips += 1
                            state["last"] = "client"
                    else:
                        state["last"] = "server"
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(server, client, False), daemon=True).start()
        pump(client, server, True)


# ----- the sandbox and a world ------------------------------------------------------------------


class World:
    """A sandbox (release build) with a scenario, a fresh database and a private temp dir."""

    def __init__(self, args, label, scenario):
        self.args = args
        self.dir = args.work / label
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "state").mkdir(parents=True)
        (self.dir / "tmp").mkdir(mode=0o700)
        self.db = f"cs_bench_{label}"
        psql(args.admin_url, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        psql(args.admin_url, f"CREATE DATABASE {self.db}")
        self.db_url = db_url_for(args.admin_url, self.db)
        self.log = open(self.dir / "sandbox.log", "w")
        self.proc = subprocess.Popen(
            [
                str(args.bin / "sandbox"),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                str(self.dir / "state"),
                "--scenario",
                str(scenario),
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench: the sandbox did not start (see {self.dir / 'sandbox.log'})")
        self.ready = json.loads(line)
        self.control = self.ready["control_url"]
        self.watched = self.ready["watched_folder_ids"][0]

    def env(self, **extra):
        r = self.ready
        env = dict(os.environ)
        env.update(
            CS_CONFIG_DIR=str(ROOT / "config"),
            CS_ENVIRONMENT="sandbox",
            DATABASE_URL=self.db_url,
            CS_TEMP_DIR=str(self.dir / "tmp"),
            BOX_API_BASE_URL=r["base_url"],
            BOX_UPLOAD_BASE_URL=r["upload_url"],
            BOX_OAUTH2_URL=r["oauth2_url"],
            BOX_CONFIG_FILE=r["box_app_config"],
            BOX_ROOT_FOLDER_ID=r["box_root_folder_id"],
            BOX_WATCHED_FOLDER_ID=self.watched,
            DAM_BASE_URL=r["dam_url"],
            DAM_USERNAME=r["dam_username"],
            DAM_PASSWORD=r["dam_password"],
            MAILGUN_BASE_URL=r["mailgun_url"],
            MAILGUN_DOMAIN=r["mailgun_domain"],
            MAILGUN_API_KEY=r["mailgun_api_key"],
            WEBHOOK_BASE_URL=r["webhook_url"],
            RUST_LOG=os.environ.get("BENCH_RUST_LOG", "warn"),
        )
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def stats(self):
        return http_json("GET", f"{self.control}/stats")

    def state(self):
        return http_json("GET", f"{self.control}/state")

    def settings(self, **values):
        return http_json("POST", f"{self.control}/config", values)

    def upload(self, name, source):
        return http_json(
            "POST",
            f"{self.control}/agency-upload",
            {"folder_id": self.watched, "name": name, "source_path": str(source)},
        )

    def run(self, binary, **extra):
        """Runs a release binary once; returns wall s, CPU s (with children), peak RSS."""
        return measure([str(self.args.bin / binary)], self.env(**extra), self.dir / f"{binary}.log")

    def tracking_ids(self):
        state = self.state()
        root = self.ready["box_root_folder_id"]
        campaigns = {f["id"] for f in state["box"]["folders"] if f.get("parent_id") == root}
        return [
            (f["name"][:6], f["name"][7:])
            for f in state["box"]["files"]
            if f.get("parent_id") in campaigns
        ]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        psql(self.args.admin_url, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def measure(command, env, log_path):
    """Runs `command`; samples its own VmHWM every 10 ms; wait4 gives CPU and the max RSS of it
    and its children (ffprobe)."""
    with open(log_path, "a") as log_file:
        started = time.monotonic()
        proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
        hwm = [0]
        done = threading.Event()

        def sample():
            path = f"/proc/{proc.pid}/status"
            while not done.is_set():
                try:
                    with open(path) as status:
                        for line in status:
                            if line.startswith("VmHWM:"):
                                hwm[0] = max(hwm[0], int(line.split()[1]))
                except (OSError, ValueError):
                    pass
                done.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {command[0]} exited {proc.returncode} (see {log_path})")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": hwm[0] / 1024,
        "peak_rss_with_children_mb": usage.ru_maxrss / 1024,
    }


def delta(before, after, key):
    return after.get(key, 0) - before.get(key, 0)


def token_requests(stats):
    return sum(n for route, n in stats["routes"].items() if route.startswith("POST /oauth2/token"))


# ----- media ------------------------------------------------------------------------------------


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_media(work):
    """Short H.264 videos and PNG/JPEG images, like an agency's cut-downs."""
    media_dir = work / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for index, (size, seconds) in enumerate([("320x240", 1), ("640x360", 2), ("360x640", 1), ("480x480", 3)]):
        path = media_dir / f"clip{index}.mp4"
        if not path.exists():
            ffmpeg(
                "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
                "-f", "lavfi", "-i", "sine=frequency=440",
                "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-shortest", str(path),
            )
        made.append(("video", "9x16-15s", "mp4", path))
    for index, (size, ext) in enumerate(
        [("1080x1080", "png"), ("1200x628", "jpg"), ("1080x1920", "jpg"), ("640x640", "png"), ("800x600", "jpg"), ("1920x1080", "png")]
    ):
        path = media_dir / f"still{index}.{ext}"
        if not path.exists():
            ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}", "-frames:v", "1", str(path))
        made.append(("image", "1x1", ext, path))
    return made


def fast_scenario(work, masters=None, import_delay_ms=30, watched=1):
    """A scenario with one campaign at A1 and the given masters (name, file, mime, asset type),
    and `watched` watched folders (`incoming`, `incoming-2`, ...)."""
    masters = masters or [(n, MEDIA / f, m, t) for n, f, m, t in FAST_SCENARIO_MASTERS]
    folders = ["incoming"] + [f"incoming-{i}" for i in range(2, watched + 1)]
    lines = [
        "box:",
        "  campaigns_folder: Campaigns",
        f"  watched_folders: [{', '.join(folders)}]",
        "dam:",
        "  campaigns_folder: Campaigns",
        "  masters_folder: Master Assets",
        "  final_assets_folder: Final Assets",
        f"  import_delay_ms: {import_delay_ms}",
        "  campaigns:",
        "    - number: C-2026-0500",
        "      name: Bench",
        "      status: A1",
        "      masters:",
    ]
    for name, path, mime, asset_type in masters:
        lines += [
            f"        - name: {name}",
            f"          file: {path}",
            f"          mime_type: {mime}",
            "          fields:",
            f"            ARTESIA.FIELD.ASSET NAME: {name}",
            f"            FERRERO.FIELD.MKTG.ASSET TYPE: {{value: {asset_type}, display: {asset_type.title()}}}",
            "            MAIN_LANGUAGES: {value: EN, display: English}",
        ]
    path = work / f"scenario-{len(masters)}-{watched}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def config_with_folders(work, count):
    """A copy of config/ whose sandbox overlay watches `count` folders, the n-th (n >= 2) from
    `BOX_WATCHED_FOLDER_ID_n`."""
    dest = work / f"config-{count}-folders"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT / "config", dest)
    overlay = dest / "environments" / "sandbox.yaml"
    text = overlay.read_text()
    one = "      name: incoming\n      profile: default\n"
    extra = "".join(
        f"    - id: ${{BOX_WATCHED_FOLDER_ID_{i}}}\n      name: incoming-{i}\n" for i in range(2, count + 1)
    )
    overlay.write_text(text.replace(one, one + extra, 1))
    return dest


def upload_backlog(world, media, count):
    tracking = [tid for tid, _ in world.tracking_ids()]
    languages = ["EN", "IT", "DE", "FR"]
    for index in range(count):
        kind, spec, ext, source = media[index % len(media)]
        tid = tracking[index % len(tracking)]
        name = f"{tid}_Item-{index:04d}_{kind}_{languages[index % 4]}_{spec}_v01.{ext}"
        world.upload(name, source)


def archived_count(world):
    state = world.state()
    folders = {f["id"]: f for f in state["box"]["folders"]}
    processed = {
        f["id"] for f in folders.values() if f["name"] == "_PROCESSED" and f.get("parent_id") == world.watched
    }
    return sum(1 for f in state["box"]["files"] if folders.get(f["parent_id"], {}).get("parent_id") in processed)


# ----- scenarios --------------------------------------------------------------------------------


def idle_passes(args, world, passes=20):
    """`passes` idle box-poll passes of `world`: wall time, Box / DAM requests, transactions; then
    one more through a round-trip-counting proxy."""
    walls, box, dam, tokens, xacts = [], [], [], [], []
    for _ in range(passes):
        before, tx_before = world.stats(), transactions(args.admin_url, world.db)
        figures = world.run("box-poll")
        time.sleep(0.05)
        after, tx_after = world.stats(), transactions(args.admin_url, world.db)
        walls.append(figures["wall_s"])
        box.append(delta(before, after, "box_requests"))
        dam.append(delta(before, after, "dam_requests"))
        tokens.append(token_requests(after) - token_requests(before))
        xacts.append(tx_after - tx_before)
    proxy = PgRoundTrips(args.admin_url)
    world.run("box-poll", DATABASE_URL=proxy.url(world.db_url))
    time.sleep(0.2)
    round_trips, startups = proxy.counts()
    return {
        "passes": passes,
        "wall_ms_median": statistics.median(walls) * 1000,
        "wall_ms_max": max(walls) * 1000,
        "box_requests_median": statistics.median(box),
        "box_requests_max": max(box),
        "token_requests_total": sum(tokens),
        "dam_requests_median": statistics.median(dam),
        "db_transactions_median": statistics.median(xacts),
        "db_round_trips": round_trips,
        "db_connections": startups,
    }


def idle(args, results):
    world = World(args, "idle", fast_scenario(args.work))
    try:
        world.run("a1-to-a2")
        world.run("box-poll")
        results["idle"] = idle_passes(args, world)
    finally:
        world.close()


def folders(args, results, count, events_stream):
    """Idle box-poll passes with `count` watched folders at the production Box limit (10/s,
    burst 10) on both sides, the events stream on or off."""
    key = f"folders_{count}_{'events' if events_stream else 'listing'}"
    world = World(args, key, fast_scenario(args.work, watched=count))
    try:
        world.settings(rate_limit_per_minute=600, rate_limit_burst=10)
        env = {
            "CS_CONFIG_DIR": config_with_folders(args.work, count),
            "BOX_MAX_REQUESTS_PER_SECOND": 10,
            "BOX_BURST": 10,
            "POLLING_EVENTS_STREAM": "true" if events_stream else "false",
        }
        for i, folder in enumerate(world.ready["watched_folder_ids"][1:], start=2):
            env[f"BOX_WATCHED_FOLDER_ID_{i}"] = folder
        world.run("a1-to-a2", **env)
        world.run("box-poll", **env)  # the first pass lists every folder and takes a position
        walls, box = [], []
        for _ in range(10):
            before = world.stats()
            figures = world.run("box-poll", **env)
            time.sleep(0.05)
            walls.append(figures["wall_s"])
            box.append(delta(before, world.stats(), "box_requests"))
        results[key] = {
            "watched_folders": count,
            "events_stream": events_stream,
            "passes": 10,
            "wall_ms_median": statistics.median(walls) * 1000,
            "box_requests_median": statistics.median(box),
            "box_requests_max": max(box),
        }
    finally:
        world.close()


def history(args, results):
    """The idle pass before and after about 1,000,000 rows of history."""
    world = World(args, "history", fast_scenario(args.work))
    try:
        world.run("a1-to-a2")
        world.run("box-poll")
        empty = idle_passes(args, world)
        started = time.monotonic()
        subprocess.run(
            ["psql", world.db_url, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(ROOT / "scripts" / "bench-history.sql")],
            check=True, capture_output=True, text=True,
        )
        # As production's autovacuum would have: the pass is measured on settled tables, not
        # while the load's vacuum and checkpoint are running.
        psql(world.db_url, "VACUUM (ANALYZE)")
        psql(world.db_url, "CHECKPOINT")
        load_s = time.monotonic() - started
        rows = int(psql(world.db_url, "SELECT (SELECT count(*) FROM box_files) + (SELECT count(*) FROM derivative_assets) "
                                      "+ (SELECT count(*) FROM master_assets) + (SELECT count(*) FROM campaigns) "
                                      "+ (SELECT count(*) FROM runs) + (SELECT count(*) FROM outbox) "
                                      "+ (SELECT count(*) FROM campaign_transitions)"))
        world.run("box-poll")  # the first pass after the load warms the caches, as cron's would
        full = idle_passes(args, world)
        results["history"] = {
            "rows": rows,
            "load_s": load_s,
            "empty": empty,
            "with_history": full,
            "ratio": full["wall_ms_median"] / empty["wall_ms_median"],
        }
    finally:
        world.close()


def backlog(args, results, key, media, limit, workers):
    world = World(args, key, fast_scenario(args.work))
    try:
        world.run("a1-to-a2")
        upload_backlog(world, media, args.files)
        extra = {"POLLING_MAX_FILES_PER_RUN": args.files, "POLLING_WORKERS": workers}
        if limit:
            # The sandbox keeps the same bucket as the client: `limit` per second sustained, a
            # burst of BURST (Box counts per minute; see RequestWindow in http.rs).
            world.settings(rate_limit_per_minute=limit * 60, rate_limit_burst=BURST)
            extra["BOX_MAX_REQUESTS_PER_SECOND"] = limit
            extra["BOX_BURST"] = BURST
        else:
            extra["BOX_MAX_REQUESTS_PER_SECOND"] = 100000
        before = world.stats()
        figures = world.run("box-poll", **extra)
        after = world.stats()
        delivered = archived_count(world)
        box = delta(before, after, "box_requests")
        downloads = delta(before, after, "box_download_requests")
        tokens = token_requests(after) - token_requests(before)
        refused = delta(before, after, "rate_limited")
        entry = {
            "files": args.files,
            "delivered": delivered,
            "workers": workers,
            "wall_s": figures["wall_s"],
            "cpu_s": figures["cpu_s"],
            "cpu_s_per_file": figures["cpu_s"] / max(delivered, 1),
            "files_per_s": delivered / figures["wall_s"],
            "box_requests": box,
            "box_requests_per_file": box / max(delivered, 1),
            "dam_requests": delta(before, after, "dam_requests"),
            "dam_requests_per_file": delta(before, after, "dam_requests") / max(delivered, 1),
            "refused_429": refused,
            "peak_rss_mb": figures["peak_rss_mb"],
        }
        if limit:
            limited = box - downloads - tokens
            entry.update(
                rate_limit_per_s=limit,
                floor_s=box / limit,
                ratio=figures["wall_s"] / (box / limit),
                limited_requests=limited,
                strict_floor_s=limited / limit,
                strict_ratio=figures["wall_s"] / (limited / limit),
            )
        results[key] = entry
    finally:
        world.close()


def big_media(args):
    """A raw 1280x720 video of at least --big-mb MB (valid for ffprobe), made once."""
    big = args.work / "media" / "big.mov"
    frame_bytes = 1280 * 720 * 2
    frames = (args.big_mb * 1_000_000 + frame_bytes - 1) // frame_bytes
    if not big.exists() or big.stat().st_size < args.big_mb * 1_000_000:
        log(f"generating a {args.big_mb} MB video ({frames} raw frames)")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-frames:v", str(frames),
               "-c:v", "rawvideo", "-pix_fmt", "uyvy422", str(big))
    return big


def curl_baseline(world, file_id, size):
    """curl down (the sandbox's Box download URL) + curl up (a plain upload endpoint) of a file."""
    ticket = http_json("POST", f"{world.control}/download-url", {"file_id": file_id})
    copy = world.dir / "tmp" / "curl-copy"
    started = time.monotonic()
    subprocess.run(["curl", "-sSf", "-o", str(copy), ticket["url"]], check=True)
    down = time.monotonic() - started
    started = time.monotonic()
    reply = subprocess.run(
        ["curl", "-sSf", "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{copy}",
         f"{world.control}/sink"],
        check=True, capture_output=True, text=True,
    )
    up = time.monotonic() - started
    assert json.loads(reply.stdout)["bytes"] == size, reply.stdout
    copy.unlink()
    return down, up


def transfer_figures(size, figures, down, up):
    """A big transfer's wall time against curl down + up of the same bytes, and its peak RSS."""
    baseline = down + up
    return {
        "bytes": size,
        "wall_s": figures["wall_s"],
        "curl_download_s": down,
        "curl_upload_s": up,
        "curl_baseline_s": baseline,
        "ratio": figures["wall_s"] / baseline,
        "throughput_mb_s": size / 1e6 / figures["wall_s"],
        "peak_rss_mb": figures["peak_rss_mb"],
    }


def big_file(args, results):
    big = big_media(args)
    size = big.stat().st_size
    world = World(args, "bytes", fast_scenario(args.work))
    try:
        world.run("a1-to-a2")
        tid = world.tracking_ids()[0][0]
        uploaded = world.upload(f"{tid}_Big-Transfer_video_EN_16x9-30s_v01.mov", big)
        # Baseline: the same bytes with curl, down from the download host into the temp dir, then
        # up to a plain upload endpoint.
        down, up = curl_baseline(world, uploaded["id"], size)
        figures = world.run("box-poll")
        delivered = archived_count(world)
        results["bytes"] = transfer_figures(size, figures, down, up)
        results["bytes"].update(
            delivered=delivered, peak_rss_with_children_mb=figures["peak_rss_with_children_mb"]
        )
    finally:
        world.close()


def big_master(args, results, key, parallel_parts):
    """a1-to-a2 on one campaign whose master is the big file: DAM download, then a chunked upload
    session to Box with `parallel_parts` parts in flight; against curl down + up of the same bytes."""
    big = big_media(args)
    size = big.stat().st_size
    world = World(args, key, fast_scenario(args.work, [("Bench_BigMaster.mov", big, "video/quicktime", "video")]))
    try:
        before = world.stats()
        figures = world.run("a1-to-a2", BOX_UPLOAD_PARALLEL_PARTS=parallel_parts)
        after = world.stats()
        uploaded = [f for f in world.state()["box"]["files"] if f["name"].endswith("_Bench_BigMaster.mov")]
        assert uploaded and uploaded[0]["size"] == size, uploaded
        down, up = curl_baseline(world, uploaded[0]["id"], size)
        results[key] = transfer_figures(size, figures, down, up)
        results[key].update(
            upload_parallel_parts=parallel_parts,
            cpu_s=figures["cpu_s"],
            parts_stored=delta(before, after, "upload_parts_stored"),
        )
    finally:
        world.close()


def latency(args, results):
    """Agency upload -> DAM asset with box-poll every 15 s (as cron would run it): uploads at
    seeded random moments (mean 4 s apart); an upload's latency ends with the pass that created its
    DAM asset (the pass's end: an upper bound, the asset may exist up to one pass earlier)."""
    import random
    media = [m for m in make_media(args.work) if m[0] == "video"]
    world = World(args, "latency", fast_scenario(args.work))
    try:
        world.run("a1-to-a2")
        world.run("box-poll")
        tracking = [tid for tid, _ in world.tracking_ids()]
        rng = random.Random(15)
        uploaded = {}  # subject -> upload time
        done = {}  # subject -> pass end
        stop = threading.Event()
        passes = []

        def cron():
            while True:
                started = time.monotonic()
                world.run("box-poll")
                ended = time.monotonic()
                passes.append(ended - started)
                names = [a["name"] for a in world.state()["dam"]["assets"]]
                for subject in list(uploaded):
                    if subject not in done and any(name.startswith(subject + "_") for name in names):
                        done[subject] = ended
                if stop.is_set() and len(done) == len(uploaded):
                    return
                stop.wait(max(0.0, 15.0 - (time.monotonic() - started)))

        runner = threading.Thread(target=cron, daemon=True)
        runner.start()
        for index in range(args.latency_uploads):
            time.sleep(rng.uniform(0.5, 7.5))
            kind, spec, ext, source = media[index % len(media)]
            subject = f"Latency-{index:03d}"
            name = f"{tracking[index % len(tracking)]}_{subject}_{kind}_EN_{spec}_v01.{ext}"
            world.upload(name, source)
            uploaded[subject] = time.monotonic()
        stop.set()
        runner.join(timeout=600)
        waits = [done[s] - uploaded[s] for s in uploaded if s in done]
        results["latency"] = {
            "uploads": len(uploaded),
            "delivered": len(waits),
            "poll_interval_s": 15,
            "latency_s_median": statistics.median(waits) if waits else None,
            "latency_s_max": max(waits) if waits else None,
            "pass_s_median": statistics.median(passes) if passes else None,
        }
    finally:
        world.close()


def many_masters(args, results, key, media, workers, limit=None):
    masters = []
    for index in range(args.masters):
        kind, _, ext, path = media[index % len(media)]
        mime = {"mp4": "video/mp4", "png": "image/png", "jpg": "image/jpeg"}[ext]
        masters.append((f"Bench_Master_{index:03d}.{ext}", path, mime, kind))
    world = World(args, key, fast_scenario(args.work, masters))
    try:
        extra = {"POLLING_WORKERS": workers}
        if limit:
            world.settings(rate_limit_per_minute=limit * 60, rate_limit_burst=BURST)
            extra["BOX_MAX_REQUESTS_PER_SECOND"] = limit
            extra["BOX_BURST"] = BURST
        before = world.stats()
        figures = world.run("a1-to-a2", **extra)
        after = world.stats()
        uploaded = len(world.tracking_ids())
        state = world.state()
        status = next((f.get("status") for f in state["dam"]["folders"] if f.get("status")), None)
        results[key] = {
            "masters": args.masters,
            "uploaded_to_box": uploaded,
            "campaign_status": status,
            "workers": workers,
            "wall_s": figures["wall_s"],
            "masters_per_s": uploaded / figures["wall_s"],
            "cpu_s": figures["cpu_s"],
            "box_requests": delta(before, after, "box_requests"),
            "box_requests_per_master": delta(before, after, "box_requests") / max(uploaded, 1),
            "dam_requests_per_master": delta(before, after, "dam_requests") / max(uploaded, 1),
            "peak_rss_mb": figures["peak_rss_mb"],
        }
        if limit:
            limited = delta(before, after, "box_requests") - (token_requests(after) - token_requests(before))
            results[key].update(
                rate_limit_per_s=limit,
                refused_429=delta(before, after, "rate_limited"),
                strict_floor_s=limited / limit,
                strict_ratio=figures["wall_s"] / (limited / limit),
            )
    finally:
        world.close()


# ----- report -----------------------------------------------------------------------------------


def table(results):
    rows = []
    i = results.get("idle")
    if i:
        rows.append(("1 idle box-poll pass (median of 20)",
                     f"{i['wall_ms_median']:.1f} ms wall (max {i['wall_ms_max']:.1f}); Box {i['box_requests_median']:g} "
                     f"(max {i['box_requests_max']}, {i['token_requests_total']} token requests in 20 passes); "
                     f"DAM {i['dam_requests_median']:g}; DB {i['db_transactions_median']:g} transactions",
                     "< 50 ms, <= 2 Box"))
        rows.append(("1b DB round trips of one idle pass",
                     f"{i['db_round_trips']} (+ {i['db_connections']} connection startup)", "<= 6"))
    one = results.get("folders_1_events")
    for count in (1, 10, 50):
        for mode in ("events", "listing"):
            f = results.get(f"folders_{count}_{mode}")
            if f:
                ratio = f" ({f['wall_ms_median'] / one['wall_ms_median']:.2f}x the 1-folder wall)" if one and mode == "events" else ""
                rows.append((f"9 idle box-poll, {count} watched folders, {'events stream' if mode == 'events' else 'listing every folder'}, 10/s",
                             f"{f['wall_ms_median']:.1f} ms median{ratio}; Box {f['box_requests_median']:g} requests (max {f['box_requests_max']})",
                             "<= 2 Box, <= 1.5x" if mode == "events" else ""))
    h = results.get("history")
    if h:
        e, f = h["empty"], h["with_history"]
        rows.append((f"6 idle box-poll, empty vs {h['rows']:,} rows of history",
                     f"{e['wall_ms_median']:.1f} ms vs {f['wall_ms_median']:.1f} ms median, ratio {h['ratio']:.2f}; "
                     f"DB {e['db_round_trips']} vs {f['db_round_trips']} round trips per pass "
                     f"(+ {f['db_connections']} connection startup), {e['db_transactions_median']:g} vs "
                     f"{f['db_transactions_median']:g} transactions",
                     "ratio <= 1.1, <= 6 round trips"))
    b = results.get("backlog_10_per_s")
    if b:
        rows.append((f"2 backlog {b['files']} files, Box limit {b['rate_limit_per_s']}/s",
                     f"{b['wall_s']:.1f} s for {b['delivered']} files; {b['box_requests']} Box requests -> floor "
                     f"{b['floor_s']:.1f} s, ratio {b['ratio']:.2f}; counting only rate-limited requests "
                     f"({b['limited_requests']}): floor {b['strict_floor_s']:.1f} s, ratio {b['strict_ratio']:.2f}; "
                     f"{b['refused_429']} x 429; {b['box_requests_per_file']:.2f} Box + {b['dam_requests_per_file']:.2f} DAM requests/file",
                     "ratio <= 1.05, 0 x 429"))
    for key, label in (("backlog_unlimited", "3 same backlog, no limit, 4 workers"),
                       ("backlog_unlimited_1_worker", "3b same, 1 worker")):
        u = results.get(key)
        if u:
            rows.append((label,
                         f"{u['wall_s']:.1f} s, {u['files_per_s']:.1f} files/s, {u['cpu_s_per_file'] * 1000:.0f} ms CPU/file "
                         f"(incl. ffprobe), {u['delivered']} delivered, peak RSS {u['peak_rss_mb']:.1f} MB",
                         ""))
    y = results.get("bytes")
    if y:
        rows.append((f"4 {y['bytes'] / 1e9:.2f} GB Box -> DAM",
                     f"{y['wall_s']:.1f} s ({y['throughput_mb_s']:.0f} MB/s) vs curl {y['curl_baseline_s']:.1f} s "
                     f"(down {y['curl_download_s']:.1f} + up {y['curl_upload_s']:.1f}): ratio {y['ratio']:.2f}; "
                     f"peak RSS {y['peak_rss_mb']:.1f} MB ({y['peak_rss_with_children_mb']:.1f} MB with ffprobe)",
                     "ratio <= 1.5, < 64 MB"))
    for key in ("bigmaster_1_part", "bigmaster"):
        g = results.get(key)
        if g:
            rows.append((f"6 {g['bytes'] / 1e9:.2f} GB master DAM -> Box, {g['upload_parallel_parts']} part(s) in flight",
                         f"{g['wall_s']:.1f} s ({g['throughput_mb_s']:.0f} MB/s) vs curl {g['curl_baseline_s']:.1f} s "
                         f"(down {g['curl_download_s']:.1f} + up {g['curl_upload_s']:.1f}): ratio {g['ratio']:.2f}; "
                         f"{g['parts_stored']} parts; peak RSS {g['peak_rss_mb']:.1f} MB",
                         "ratio <= 1.2, <= 32 MB" if key == "bigmaster" else ""))
    t = results.get("latency")
    if t and t["latency_s_median"] is not None:
        rows.append((f"7 agency upload -> DAM asset, box-poll every {t['poll_interval_s']} s",
                     f"median {t['latency_s_median']:.1f} s, max {t['latency_s_max']:.1f} s over {t['delivered']} of "
                     f"{t['uploads']} uploads (pass median {t['pass_s_median']:.2f} s)", ""))
    for key, label in (("masters_100", "5 a1-to-a2, 100 masters, 4 workers"), ("masters_100_1_worker", "5b same, 1 worker"),
                       ("masters_100_10_per_s", "5c same, 4 workers, Box limit 10/s")):
        m = results.get(key)
        if m:
            limited = (f"; floor of the {m['strict_floor_s'] * m['rate_limit_per_s']:.0f} rate-limited requests "
                       f"{m['strict_floor_s']:.1f} s, ratio {m['strict_ratio']:.2f}, {m['refused_429']} x 429"
                       if "strict_ratio" in m else "")
            rows.append((label,
                         f"{m['wall_s']:.1f} s, {m['masters_per_s']:.1f} masters/s, {m['uploaded_to_box']} in Box, "
                         f"campaign {m['campaign_status']}; {m['box_requests_per_master']:.2f} Box + "
                         f"{m['dam_requests_per_master']:.2f} DAM requests/master; peak RSS {m['peak_rss_mb']:.1f} MB{limited}",
                         ""))
    width = max(len(r[0]) for r in rows) if rows else 0
    print(f"\nbench: {results['machine']['cores']} cores, {results['machine']['cpu']}")
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value}" + (f"   [target: {target}]" if target else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", type=Path, default=ROOT / "target" / "release")
    parser.add_argument("--admin-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--masters", type=int, default=100)
    parser.add_argument("--big-mb", type=int, default=1000)
    parser.add_argument("--latency-uploads", type=int, default=50,
                        help="uploads of the latency scenario (spread over about 4 s each)")
    parser.add_argument("--only", default="idle,history,folders,backlog,unlimited,bytes,masters,bigmaster,latency",
                        help="comma-separated scenarios: idle, history, folders, backlog, unlimited, bytes, masters, bigmaster, latency")
    parser.add_argument("--keep", action="store_true", help="keep the work dirs under target/bench")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "bench" / "results.json")
    args = parser.parse_args()
    args.work = ROOT / "target" / "bench"
    args.work.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    results = {
        "machine": {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }
    media = make_media(args.work)
    steps = [
        ("idle", lambda: idle(args, results)),
        ("history", lambda: history(args, results)),
        *[("folders", (lambda c=c, e=e: folders(args, results, c, e))) for c in (1, 10, 50) for e in (True, False)],
        ("backlog", lambda: backlog(args, results, "backlog_10_per_s", media, 10, 4)),
        ("unlimited", lambda: backlog(args, results, "backlog_unlimited", media, None, 4)),
        ("unlimited", lambda: backlog(args, results, "backlog_unlimited_1_worker", media, None, 1)),
        ("bytes", lambda: big_file(args, results)),
        ("masters", lambda: many_masters(args, results, "masters_100", media, 4)),
        ("masters", lambda: many_masters(args, results, "masters_100_1_worker", media, 1)),
        ("masters", lambda: many_masters(args, results, "masters_100_10_per_s", media, 4, 10)),
        ("bigmaster", lambda: big_master(args, results, "bigmaster_1_part", 1)),
        ("bigmaster", lambda: big_master(args, results, "bigmaster", 4)),
        ("latency", lambda: latency(args, results)),
    ]
    for name, step in steps:
        if name in only:
            log(f"scenario {name}")
            step()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    table(results)
    print(f"bench: results in {args.out}")


if __name__ == "__main__":
    main()
