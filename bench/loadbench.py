#!/usr/bin/env python3
"""The load benchmark of embedgate (run it through bench/run.sh).

Starts the ceilings (a bare actix-web server serving the page the template
workbook renders, a small upstream, nginx proxy_pass to that upstream) and
the gateway on SQLite (and on a fresh PostgreSQL database when
EMBEDGATE_TEST_POSTGRES_URL is set), sets the gateway up through the admin
API, then drives wrk in short interleaved slices: each measured row
alternates with its ceiling, slice by slice, and the row's ratio is the
median of the per-slice ratios (absolute figures drift on a shared machine;
ratios measured seconds apart much less).

Standard library only; needs wrk and nginx (and psql for PostgreSQL).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk.lua"
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
CLIENT = "bench"
TEMPLATE_WB = "bench-sales"
UPSTREAM_WB = "bench-upstream"
TEAM = "Bench Analysts"
CLAIMS = ["--teams", TEAM, "--account-type", "Explorer", "--attr", "company=acme"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- processes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} (see its log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


class Procs:
    """Every process this run started, stopped at the end (by pid)."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        out = open(self.logdir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = 15) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)


# ---- HTTP ------------------------------------------------------------------------


def http_request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    res = conn.getresponse()
    payload = res.read()
    conn.close()
    return res.status, res.headers, payload


class Admin:
    def __init__(self, port: int, token: str):
        self.port = port
        self.auth = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body=None):
        status, _, payload = http_request(self.port, method, "/admin/api" + path, body, self.auth)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload) if payload else None


def session_cookie(headers) -> str:
    for value in headers.get_all("Set-Cookie") or []:
        if value.startswith("embedgate_session="):
            return value.split(";", 1)[0]
    raise RuntimeError("the handshake set no session cookie")


# ---- wrk -------------------------------------------------------------------------


@dataclass
class Slice:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    last_bad: int
    socket_errors: int
    exhausted: int
    # CPU time the serving process(es) used during the slice, per request.
    cpu_us: float = 0.0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid: int) -> float:
    """User + system CPU seconds of a process and its direct children (nginx's workers)."""
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(c) for c in task.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def wrk(args, port: int, path: str, expected: int, secs: float, paths: str = "-", cookie: str = "") -> Slice:
    argv = [
        args.wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(secs))}s", "-s", str(LUA),
        f"http://127.0.0.1:{port}{path}", "--", str(expected), paths, cookie,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    m = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")
    kv = dict(item.split("=") for item in m.group(1).split())
    return Slice(
        rps=float(kv["rps"]),
        p50_ms=int(kv["p50_us"]) / 1000,
        p99_ms=int(kv["p99_us"]) / 1000,
        requests=int(kv["requests"]),
        errors=int(kv["errors"]),
        last_bad=int(kv["last_bad_status"]),
        socket_errors=int(kv["socket_errors"]),
        exhausted=int(kv["exhausted"]),
    )


# ---- targets -----------------------------------------------------------------------


@dataclass
class Target:
    """Something wrk can load: a port, a path, and how to prepare a slice."""

    name: str
    port: int
    path: str
    expected: int = 200
    cookie: str = ""
    # For handshakes: writes fresh signed paths for one slice, returns the prefix.
    tokens: object = None
    # The serving process, for the CPU it spends per request.
    pid: int | None = None
    slices: list[Slice] = field(default_factory=list)

    def run(self, args, secs: float) -> Slice:
        paths = "-"
        if self.tokens is not None:
            paths = self.tokens(secs)
        try:
            before = cpu_secs(self.pid) if self.pid else 0.0
            s = wrk(args, self.port, self.path, self.expected, secs, paths, self.cookie)
            if self.pid and s.requests:
                s.cpu_us = (cpu_secs(self.pid) - before) / s.requests * 1e6
        finally:
            if paths != "-":
                for i in range(args.threads):
                    Path(f"{paths}.{i}").unlink(missing_ok=True)
        if s.exhausted:
            log(f"  warning: {self.name} ran out of tokens ({s.exhausted} requests replayed)")
        self.slices.append(s)
        return s


class TokenMaker:
    """Signed embed paths for one slice, sized from the rate seen so far."""

    def __init__(self, args, workdir: Path, tag: str, workbook: str, users: int | None, guess_rps: float):
        self.args, self.workdir, self.tag = args, workdir, tag
        self.workbook, self.users = workbook, users
        self.best_rps = guess_rps
        self.n = 0

    def seen(self, rps: float) -> None:
        # The guess stays the floor: the machine's speed moves several times
        # over within a row (a slice at 4k req/s, the next at 27k), and a
        # slice that runs out of tokens replays them (401s, not a measure).
        # 240,000 tokens take under a second to sign.
        self.best_rps = max(self.best_rps, rps)

    def __call__(self, secs: float) -> str:
        self.n += 1
        count = int(self.best_rps * secs * 1.6) + 2000
        prefix = str(self.workdir / f"tokens-{self.tag}-{self.n}")
        argv = [
            str(self.args.bin_dir / "examples" / "tokens"), "--secret", SECRET, "--client-id", CLIENT,
            "--workbook", self.workbook, "--count", str(count), "--out", prefix,
            "--files", str(self.args.threads), *CLAIMS,
        ]
        if self.users:
            argv += ["--users", str(self.users), "--email-prefix", "user-"]
        else:
            argv += ["--email-prefix", f"new-{self.tag}-{self.n}-"]
        subprocess.run(argv, check=True)
        return prefix


# ---- measuring -----------------------------------------------------------------------


@dataclass
class Row:
    name: str
    target: Target
    ref: Target
    goal: float | None = None
    ratios: list[float] = field(default_factory=list)
    own: list[Slice] = field(default_factory=list)


def measure_pair(args, row: Row) -> None:
    log(f"measuring {row.name} against {row.ref.name}: {args.slices} x {args.slice_secs} s each")
    for k in range(args.slices):
        order = [row.ref, row.target] if k % 2 == 0 else [row.target, row.ref]
        got = {}
        for t in order:
            got[id(t)] = t.run(args, args.slice_secs)
            time.sleep(args.pause)
        mine, ref = got[id(row.target)], got[id(row.ref)]
        if isinstance(row.target.tokens, TokenMaker):
            row.target.tokens.seen(mine.rps)
        row.own.append(mine)
        row.ratios.append(mine.rps / ref.rps if ref.rps else 0.0)
        log(
            f"  slice {k + 1}: {mine.rps:9.0f} rps (p99 {mine.p99_ms:6.2f} ms, errors {mine.errors}, "
            f"{mine.cpu_us:5.1f} CPU µs/req)  vs {ref.rps:9.0f} rps ({ref.cpu_us:5.1f} CPU µs/req)"
            f"  -> ratio {row.ratios[-1]:.3f}"
        )


def summary(slices: list[Slice]) -> dict:
    return {
        "rps": statistics.median(s.rps for s in slices),
        "p50_ms": statistics.median(s.p50_ms for s in slices),
        "p99_ms": statistics.median(s.p99_ms for s in slices),
        "p99_max_ms": max(s.p99_ms for s in slices),
        "cpu_us": statistics.median(s.cpu_us for s in slices),
        "errors": sum(s.errors + s.socket_errors for s in slices),
        "requests": sum(s.requests for s in slices),
        "last_bad": max(s.last_bad for s in slices),
        "slices": len(slices),
    }


# ---- setting up ------------------------------------------------------------------------


def write_config(path: Path, port: int, db_url: str, keys: Path) -> None:
    path.write_text(
        f"""[server]
bind = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[database]
url = "{db_url}"

[keys]
dir = "{keys}"

[content]
templates_dir = "{ROOT / 'templates'}"
data_dir = "{ROOT / 'data'}"

[limits]
# Every handshake of the benchmark succeeds; no limiter in the way anyway.
failed_handshakes_per_minute = 0
"""
    )


def setup_gateway(admin: Admin, upstream_port: int) -> None:
    admin.call("POST", "/clients", {
        "client_id": CLIENT, "name": "Bench host app", "secret": SECRET,
        "allowed_origins": ["https://host.example"],
    })
    for name in [TEAM, "Bench Viewers", "Bench Others"]:
        admin.call("POST", "/teams", {"name": name, "description": "load benchmark"})
    top = admin.call("POST", "/workspaces", {"name": "Bench"})["id"]
    mid = admin.call("POST", "/workspaces", {"name": "Reports", "parent": top})["id"]
    leaf = admin.call("POST", "/workspaces", {"name": "Sales", "parent": mid})["id"]
    admin.call("POST", "/workbooks", {
        "id": TEMPLATE_WB, "name": "Sales", "workspace": leaf,
        "source": {"type": "template", "template": "sales.html", "dataset": "sales.csv",
                   "company_field": "company"},
    })
    admin.call("POST", "/workbooks", {
        "id": UPSTREAM_WB, "name": "Upstream", "workspace": leaf,
        "source": {"type": "upstream", "url": f"http://127.0.0.1:{upstream_port}/app"},
    })
    # The users' team reaches both workbooks through the outermost workspace;
    # other teams' grants sit on the way.
    admin.call("POST", "/grants", {"team": TEAM, "workspace": top, "level": "explore"})
    admin.call("POST", "/grants", {"team": "Bench Viewers", "workspace": leaf, "level": "view"})
    admin.call("POST", "/grants", {"team": "Bench Others", "workbook": TEMPLATE_WB, "level": "view"})


def handshake(port: int, path: str) -> str:
    status, headers, body = http_request(port, "GET", path)
    if status != 303:
        raise RuntimeError(f"handshake answered {status}: {body[:300]!r}")
    return session_cookie(headers)


def sign_paths(args, workbook: str, count: int, prefix: str, users: int | None = None) -> list[str]:
    argv = [
        str(args.bin_dir / "examples" / "tokens"), "--secret", SECRET, "--client-id", CLIENT,
        "--workbook", workbook, "--count", str(count), "--email-prefix", prefix, *CLAIMS,
    ]
    if users:
        argv += ["--users", str(users)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return out.split()


def postgres_database(base: str) -> tuple[str, str]:
    """A fresh database on the server of `base`: (its URL, its name)."""
    name = f"embedgate_bench_{os.getpid()}_{int(time.time())}"
    subprocess.run(["psql", base, "-q", "-c", f'CREATE DATABASE "{name}"'], check=True)
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, "")), name


def drop_postgres_database(base: str, name: str) -> None:
    subprocess.run(["psql", base, "-q", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False)


def nginx_conf(dir: Path, port: int, upstream_port: int, workers: int) -> Path:
    for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"]:
        (dir / sub).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = dir / "nginx.conf"
    conf.write_text(
        f"""# Generated by bench/loadbench.py: nginx proxy_pass to the bench upstream.
{user}daemon off;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream bench_upstream {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    return conf


# ---- the run ------------------------------------------------------------------------------


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "commit": commit + (" (src/ modified)" if dirty else ""),
        "loadavg_start": os.getloadavg()[0],
    }


def busy(own_load: bool = False) -> str | None:
    """Why the machine is not quiet. After a row has run, the load average
    still carries this benchmark's own load: then only a fuzzer counts."""
    load = os.getloadavg()[0]
    if load > 1.5 and not own_load:
        return f"load average {load:.2f}"
    # cargo fuzz runs target/<triple>/release/<name> -artifact_prefix=…/fuzz/artifacts/…
    fuzz = subprocess.run(["pgrep", "-f", "fuzz/target|-artifact_prefix="],
                          capture_output=True, text=True).stdout.split()
    if fuzz:
        return f"a fuzzer is running (pids {' '.join(fuzz)})"
    return None


def start_gateway(args, procs: Procs, work: Path, backend: str, upstream_port: int, pg_base: str | None):
    port = free_port()
    gdir = work / f"gateway-{backend}"
    gdir.mkdir()
    pg_name = None
    if backend == "sqlite":
        db_url = f"sqlite://{gdir / 'embedgate.db'}"
    else:
        db_url, pg_name = postgres_database(pg_base)
    config = gdir / "embedgate.toml"
    write_config(config, port, db_url, gdir / "keys")
    binary = str(args.bin_dir / "embedgate")
    out = subprocess.run([binary, "--config", str(config), "admin-token", "create", "--name", "bench"],
                         check=True, capture_output=True, text=True).stdout
    token = out.strip().splitlines()[-1]
    argv = [binary, "--config", str(config), "serve"]
    if args.callgrind:
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={work}/callgrind.out.{backend}"] + argv
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info,sqlx=warn,actix_server=warn")
    proc = procs.start(f"gateway-{backend}", argv, env=env, cwd=gdir)
    wait_port(port, proc, f"the gateway ({backend})", timeout=300 if args.callgrind else 60)
    return port, proc, Admin(port, token), pg_name


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", type=Path, required=True, help="cargo's release folder")
    p.add_argument("--slices", type=int, default=5, help="slice pairs per row (default 5)")
    p.add_argument("--slice-secs", type=float, default=5, help="seconds per slice (default 5)")
    p.add_argument("--pause", type=float, default=0.3, help="seconds between slices")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--users", type=int, default=1000, help="existing users for handshakes")
    p.add_argument("--backends", default=None, help="sqlite,postgres (default: sqlite, and "
                   "postgres when EMBEDGATE_TEST_POSTGRES_URL is set)")
    p.add_argument("--rows", default="all", help="comma-separated subset of: existing,provision,template,upstream")
    p.add_argument("--wait-quiet", type=float, default=0,
                   help="wait up to this many seconds for a quiet machine before measuring")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    p.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    p.add_argument("--profile", choices=["perf", "callgrind", "strace", "switches"],
                   help="instead of the table: profile the gateway (SQLite) under each row's load")
    p.add_argument("--profile-secs", type=float, default=15)
    args = p.parse_args()
    args.callgrind = args.profile == "callgrind"

    pg_base = os.environ.get("EMBEDGATE_TEST_POSTGRES_URL")
    backends = (args.backends or ("sqlite,postgres" if pg_base else "sqlite")).split(",")
    if "postgres" in backends and not pg_base:
        p.error("postgres needs EMBEDGATE_TEST_POSTGRES_URL")
    rows_wanted = {"existing", "provision", "template", "upstream"} if args.rows == "all" else set(args.rows.split(","))

    work = Path(tempfile.mkdtemp(prefix="embedgate-bench-"))
    procs = Procs(work)
    pg_dbs: list[str] = []
    info = machine()
    log(f"work folder {work}; {info['nproc']} CPUs ({info['cpu']}); commit {info['commit']}")
    ok = False
    try:
        # Ceilings that do not depend on the gateway.
        up_port, ng_port, ceil_port = free_port(), free_port(), free_port()
        up = procs.start("upstream", [str(args.bin_dir / "examples" / "ceiling"), f"127.0.0.1:{up_port}"])
        wait_port(up_port, up, "the upstream")
        conf = nginx_conf(work / "nginx", ng_port, up_port, os.cpu_count() or 1)
        ng = procs.start("nginx", [args.nginx, "-c", str(conf), "-p", str(work / "nginx")])
        wait_port(ng_port, ng, "nginx")
        upstream = Target("upstream direct", up_port, "/app", pid=up.pid)
        nginx = Target("nginx proxy_pass -> upstream", ng_port, "/app", pid=ng.pid)
        ceiling = None

        results = {"machine": info, "settings": {
            "connections": args.connections, "threads": args.threads,
            "slices": args.slices, "slice_secs": args.slice_secs}, "rows": []}
        measured: list[Row] = []

        for backend in backends:
            log(f"gateway on {backend}")
            port, gw, admin, pg_name = start_gateway(args, procs, work, backend, up_port, pg_base)
            if pg_name:
                pg_dbs.append(pg_name)
            setup_gateway(admin, up_port)
            users = 100 if args.callgrind else args.users
            log(f"  provisioning {users} users (one handshake each)")
            paths = sign_paths(args, TEMPLATE_WB, users, "user-")
            cookies = [handshake(port, path) for path in paths]
            template_cookie = cookies[0]
            upstream_cookie = handshake(port, sign_paths(args, UPSTREAM_WB, 1, "user-")[0])
            template_path = f"/embed/workbooks/{TEMPLATE_WB}"
            status, _, page = http_request(port, "GET", template_path, headers={"Cookie": template_cookie})
            if status != 200:
                raise RuntimeError(f"the template workbook answered {status}: {page[:300]!r}")
            if ceiling is None:
                (work / "page.html").write_bytes(page)
                log(f"  the template workbook renders {len(page)} bytes; the actix ceiling serves the same")
                ceil_port = free_port()
                c = procs.start("ceiling", [str(args.bin_dir / "examples" / "ceiling"),
                                            f"127.0.0.1:{ceil_port}", "--body", str(work / "page.html")])
                wait_port(ceil_port, c, "the actix ceiling")
                ceiling = Target("actix ceiling (same page)", ceil_port, "/", pid=c.pid)

            tag = backend
            rows = []
            if "existing" in rows_wanted:
                rows.append(Row(f"gateway/{backend}: handshake, existing user", Target(
                    "handshake existing", port, template_path, 303, pid=gw.pid,
                    tokens=TokenMaker(args, work, f"{tag}-existing", TEMPLATE_WB, users, 30000)), ceiling, 0.30))
            if "provision" in rows_wanted:
                rows.append(Row(f"gateway/{backend}: handshake, new user", Target(
                    "handshake provisioning", port, template_path, 303, pid=gw.pid,
                    tokens=TokenMaker(args, work, f"{tag}-new", TEMPLATE_WB, None, 30000)), ceiling, 0.10))
            if "template" in rows_wanted:
                rows.append(Row(f"gateway/{backend}: session, template workbook", Target(
                    "session template", port, template_path, 200, cookie=template_cookie, pid=gw.pid), ceiling, 0.70))
            if "upstream" in rows_wanted:
                rows.append(Row(f"gateway/{backend}: session, upstream workbook", Target(
                    "session upstream", port, f"/embed/workbooks/{UPSTREAM_WB}", 200,
                    cookie=upstream_cookie, pid=gw.pid), nginx, 0.80))

            if args.profile:
                profile(args, work, gw, rows)
                procs.stop(gw)
                continue

            own = bool(measured)
            reason = busy(own)
            waited = 0.0
            while reason and waited < args.wait_quiet:
                log(f"  waiting for a quiet machine: {reason}")
                time.sleep(30)
                waited += 30
                reason = busy(own)
            if reason:
                log(f"  WARNING: measuring on a busy machine ({reason}); the figures will be noisy")

            # Warm every server up once.
            for t in [ceiling, upstream, nginx] + [r.target for r in rows if r.target.tokens is None]:
                wrk(args, t.port, t.path, t.expected, 2, "-", t.cookie)
            if not measured:
                measured.append(Row("nginx proxy_pass vs upstream direct", nginx, upstream))
                measure_pair(args, measured[-1])
            for row in rows:
                measure_pair(args, row)
                measured.append(row)
            procs.stop(gw)

        if args.profile:
            ok = True
            return 0

        info["loadavg_end"] = os.getloadavg()[0]
        table = []
        for t, ref in [(ceiling, None), (upstream, None), (nginx, upstream)]:
            table.append({"row": t.name, **summary(t.slices), "ratio": None, "vs": None, "goal": None})
        table[2]["ratio"] = statistics.median(measured[0].ratios)
        table[2]["vs"] = upstream.name
        for row in measured[1:]:
            table.append({"row": row.name, **summary(row.own), "ratio": statistics.median(row.ratios),
                          "vs": row.ref.name, "goal": row.goal, "ratios": row.ratios})
        results["rows"] = table
        print_table(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        ok = True
        return 0
    finally:
        procs.stop_all()
        for name in pg_dbs:
            drop_postgres_database(pg_base, name)
        if ok and not args.keep and not args.profile:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs and configs kept in {work}")


def print_table(results: dict) -> None:
    m = results["machine"]
    s = results["settings"]
    print()
    print(f"embedgate load benchmark, {m['date']}, commit {m['commit']}")
    print(f"machine: {m['nproc']} x {m['cpu']}; load average {m['loadavg_start']:.2f} at start, "
          f"{m.get('loadavg_end', 0):.2f} at end")
    print(f"wrk -t{s['threads']} -c{s['connections']}, {s['slices']} slices of {s['slice_secs']:g} s per row, "
          "each alternating with its reference; figures are medians over slices")
    print()
    print("| row | req/s | p50 ms | p99 ms | errors | CPU µs/req | ratio (median of slices) | vs | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in results["rows"]:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        goal = ""
        if r["goal"] is not None:
            met = r["ratio"] >= r["goal"] and r["p99_ms"] < 10
            goal = f"≥ {r['goal']:.2f}, p99 < 10 ms: {'met' if met else 'NOT met'}"
        errors = f"{r['errors']}" + (f" (last {r['last_bad']})" if r["last_bad"] else "")
        print(f"| {r['row']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {errors} | "
              f"{r.get('cpu_us', 0):.1f} | "
              f"{ratio} | {r['vs'] or ''} | {goal} |")
    print()


# ---- profiling --------------------------------------------------------------------------------


def profile(args, work: Path, gw: subprocess.Popen, rows: list[Row]) -> None:
    """Profiles the gateway under each row's load; reports go to the work folder."""
    light = argparse.Namespace(**vars(args))
    if args.callgrind:
        # Under valgrind the gateway is ~50x slower: a light load is enough.
        light.connections, light.threads = 4, 1
    for row in rows:
        name = row.target.name.replace(" ", "-")
        log(f"profiling {row.target.name} for {args.profile_secs:g} s ({args.profile})")
        if isinstance(row.target.tokens, TokenMaker):
            row.target.tokens.args = light
            row.target.tokens.best_rps = 300 if args.callgrind else row.target.tokens.best_rps
        if args.callgrind:
            subprocess.run(["callgrind_control", "-z", str(gw.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
            s = row.target.run(light, args.profile_secs)
            subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", f"--dump={name}", str(gw.pid)], check=True, capture_output=True)
        elif args.profile == "switches":
            before = thread_switches(gw.pid)
            s = row.target.run(light, args.profile_secs)
            log_switches_per_request(before, thread_switches(gw.pid), s.requests)
        elif args.profile == "strace":
            report = work / f"strace-{name}.txt"
            # Counts only: `-c` keeps strace's own cost per call small.
            tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(report), "-p", str(gw.pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            s = row.target.run(light, args.profile_secs)
            tracer.send_signal(2)
            tracer.wait()
            log(f"  report: {report}")
            log_syscalls_per_request(report, s.requests)
        else:
            data = work / f"perf-{name}.data"
            # DWARF call graphs: release builds keep no frame pointers.
            rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "499",
                                    "--call-graph", "dwarf,16384",
                                    "-p", str(gw.pid), "-o", str(data)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            s = row.target.run(light, args.profile_secs)
            rec.send_signal(2)
            rec.wait()
            for kind, flag in [("self", "--no-children"), ("inclusive", "--children")]:
                report = work / f"perf-{name}-{kind}.txt"
                with open(report, "w") as out:
                    subprocess.run(["perf", "report", "-i", str(data), "--stdio", flag,
                                    "--sort", "symbol", "-g", "none", "--percent-limit", "0.5"],
                                   stdout=out, stderr=subprocess.DEVNULL, check=False)
                log(f"  report: {report}")
            if not args.keep:
                data.unlink(missing_ok=True)
        log(f"  {s.rps:.0f} req/s ({s.requests} requests) under the profiler, errors {s.errors}")
    if args.callgrind:
        time.sleep(1)
        for f in sorted(work.glob("callgrind.out.*")):
            head = f.read_text(errors="replace")[:4000]
            m = re.search(r"^desc: Trigger: dump (\S+)", head, re.M)
            if not m:
                continue
            for kind, flag in [("self", "--inclusive=no"), ("inclusive", "--inclusive=yes")]:
                report = work / f"callgrind-{m.group(1)}-{kind}.txt"
                with open(report, "w") as out:
                    subprocess.run(["callgrind_annotate", flag, "--threshold=99", str(f)],
                                   stdout=out, stderr=subprocess.DEVNULL, check=False)
                log(f"  report: {report}")


def log_syscalls_per_request(report: Path, requests: int) -> None:
    """Logs the system calls of an `strace -c` report per request served."""
    if requests <= 0 or not report.exists():
        return
    counts = []
    for line in report.read_text(errors="replace").splitlines():
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and f[3].isdigit() and f[-1] != "total":
            counts.append((int(f[3]), f[-1]))
    counts.sort(reverse=True)
    total = sum(c for c, _ in counts)
    top = ", ".join(f"{name} {c / requests:.2f}" for c, name in counts[:6])
    log(f"  {total / requests:.2f} system calls per request ({top})")


def thread_switches(pid: int) -> dict[str, list[int]]:
    """Voluntary and involuntary context switches so far, summed per thread name."""
    out: dict[str, list[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread ended
        name = re.search(r"^Name:\s*(.*)$", status, re.M).group(1)
        counts = [int(re.search(rf"^{k}:\s*(\d+)", status, re.M).group(1))
                  for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")]
        total = out.setdefault(name, [0, 0])
        total[0] += counts[0]
        total[1] += counts[1]
    return out


def log_switches_per_request(before: dict, after: dict, requests: int) -> None:
    """Logs each thread's context switches (voluntary + involuntary) per request served."""
    if requests <= 0:
        return
    parts, total = [], 0.0
    for name in sorted(after):
        old = before.get(name, [0, 0])
        vol, invol = (after[name][i] - old[i] for i in (0, 1))
        total += (vol + invol) / requests
        parts.append(f"{name} {vol / requests:.2f}+{invol / requests:.2f}")
    log(f"  {total:.2f} context switches per request (voluntary+involuntary: {', '.join(parts)})")


if __name__ == "__main__":
    sys.exit(main())
