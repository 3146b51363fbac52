#!/usr/bin/env python3
"""Side-by-side benchmark: Tidemark vs VictoriaMetrics vs Prometheus on the same remote-write load.

    python3 bench/run.py --size quick          # ~2,000 series x 1 h, a few minutes
    python3 bench/run.py                       # 10,000 series x 6 h at 15 s (the issue's load)
    python3 bench/run.py --size million        # 1,000,000 series x 1 h (needs time and memory)
    python3 bench/run.py --churn-test          # recent-hour query latency: churn history vs none

One peer after another, each on a fresh temporary data directory and a free loopback port: start
it, send it the same pre-generated requests (bench/loadgen), make it durable and compacted, run a
set of Grafana-like range queries, stop it cleanly. Reports server CPU-seconds (from /proc and the
child's rusage), samples/s, bytes per sample on disk, peak RSS and query latencies, with the ratios
Tidemark/VictoriaMetrics and Tidemark/Prometheus, into bench/RESULTS.md (the section of this size
is replaced; other sections are kept) and the raw figures into bench/results/<size>.json.

--churn-test measures instead the series-churn target of issue 3: per peer, two loads of the same
churning shape (every pod replaced every few minutes, about 1 M new series per hour at the default
100,000 active series) that end at the same instant, one over the whole span (hours of churn
history) and a baseline over only the queried hour plus the queries' lookback (no history), and
compares the latency of the same dashboard queries over the most recent hour, which holds about as
many series in both (section `churn`, results/churn.json).

Standard library only. See bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SIZES = {
    "quick": dict(series=2000, hours=1, interval_s=15),
    "default": dict(series=10000, hours=6, interval_s=15),
    "million": dict(series=1000000, hours=1, interval_s=15),
}

# Grafana-like panels over the last hour of the load (name, expr).
QUERIES = [
    ("rate_sum_by_ns", 'sum by (namespace) (rate(http_requests_total[5m]))'),
    ("hist_p99", 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))'),
    ("topk_cpu", 'topk(5, sum by (pod) (rate(container_cpu_usage_seconds_total[5m])))'),
    ("selector", 'container_memory_working_set_bytes{namespace="payments"}'),
    ("gauge_sum_by_ns", 'sum by (namespace) (container_memory_working_set_bytes)'),
    ("avg_over_time_by_node", 'avg by (node) (avg_over_time(app_load_average[5m]))'),
]

PEERS = ["tidemark", "victoriametrics", "prometheus"]

# --churn-test: 100,008 active series (4,167 pods) that all live 4..8 min (6 on average), i.e.
# about 10 replacements per pod slot per hour: ~1.0 M new series per hour of data.
CHURN_SIZE = dict(series=100000, hours=2, interval_s=15, lifetime_min=4, lifetime_max=8)
CHURN_PEERS = ["tidemark", "victoriametrics"]
CHURN_TARGET = 1.2  # issue 3: recent-hour query latency with churn history <= 1.2 x without
# The churn test's baseline spans only what the queries read: the queried hour (run_queries: the
# last 3600 s at a 15 s step), the [5m] range windows and the 5 min lookback of the instant
# selectors before its first step, and a margin: 70 min.
CHURN_BASELINE_HOURS = 70 / 60.0


# ---------------------------------------------------------------- helpers

def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, params=None, timeout=300):
    """(status, body bytes); never raises for HTTP error codes."""
    if params:
        url = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cpu_seconds(pid):
    """utime + stime of a live process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def dir_bytes(path, exclude=(), skip_file=None):
    """Apparent size of all files under path (du -b), hard links counted once; `exclude` lists
    subdirectories left out, `skip_file(name)` files left out."""
    seen = set()
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in exclude]
        for name in files:
            if skip_file and skip_file(name):
                continue
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


class Server:
    """A peer's process; stopped with SIGTERM, its whole-life CPU taken from wait4's rusage."""

    def __init__(self, name, argv, log_path, ready_url, ready_timeout=120):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.rusage = None
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (name, self.proc.returncode, self.tail()))
            try:
                if http("GET", ready_url, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("%s not ready after %ss:\n%s" % (name, ready_timeout, self.tail()))

    def tail(self, n=30):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")

    def stop(self, timeout=600):
        """SIGTERM, wait; returns (exit code, total CPU-seconds of the process's life)."""
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.rusage = rusage
                self.log.close()
                return self.proc.returncode, rusage.ru_utime + rusage.ru_stime
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("%s did not stop within %ss of SIGTERM" % (self.name, timeout))

    def kill(self):
        if self.proc.poll() is None and self.rusage is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        if not self.log.closed:
            self.log.close()


# ---------------------------------------------------------------- peers

class Peer:
    name = ""
    write_path = "/api/v1/write"
    query_params = {}

    def __init__(self, args, workdir):
        self.args = args
        self.data = os.path.join(workdir, self.name + "-data")
        os.makedirs(self.data)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(workdir, self.name + ".log")
        self.notes = []

    def start(self):
        raise NotImplementedError

    def make_durable(self):
        """After the load: flush/compact what the peer offers; returns seconds spent."""
        return 0.0

    def disk_after_stop(self, result):
        result["disk_bytes"] = dir_bytes(self.data)
        result["disk_bytes_all"] = result["disk_bytes"]


def is_rocksdb_info_log(name):
    return name == "LOG" or name.startswith("LOG.old.")


class Tidemark(Peer):
    name = "tidemark"
    offline_compaction = True  # the churn test turns it off (it only wants query latency)

    def start(self):
        argv = [self.args.tidemark, "serve", "--storage.path=" + self.data,
                "--web.listen-address=127.0.0.1:%d" % self.port] + self.args.tidemark_arg
        return Server(self.name, argv, self.log_path, self.url + "/-/ready")

    def make_durable(self):
        self.notes.append("made durable by a clean shutdown (SIGTERM: the head is sealed into "
                          "RocksDB; Tidemark has no compaction API): bytes/sample is the data dir "
                          "as left, without RocksDB's info LOG files")
        return 0.0

    def disk_after_stop(self, result):
        result["disk_bytes"] = dir_bytes(self.data, skip_file=is_rocksdb_info_log)
        result["disk_bytes_all"] = dir_bytes(self.data)
        if not self.offline_compaction:
            return
        ldb = shutil.which("ldb")
        if not ldb:
            self.notes.append("ldb (Debian rocksdb-tools) not found: no offline-compaction figure")
            return
        # What a full compaction of Tidemark's own store would leave: compact a copy offline.
        copy = self.data + "-compacted"
        shutil.copytree(self.data, copy)
        listed = subprocess.run([ldb, "--db=" + copy, "list_column_families"],
                                capture_output=True, text=True)
        cfs = ["default"]
        if "{" in listed.stdout:
            cfs = [c.strip() for c in listed.stdout.split("{", 1)[1].split("}")[0].split(",")]
        for cf in cfs:
            subprocess.run([ldb, "--db=" + copy, "--try_load_options", "--column_family=" + cf,
                            "compact"], capture_output=True, text=True)
        result["disk_bytes_offline_compacted"] = dir_bytes(copy, skip_file=is_rocksdb_info_log)
        shutil.rmtree(copy, ignore_errors=True)
        self.notes.append("also shown: a copy after an offline full RocksDB compaction of every "
                          "column family (`ldb compact`), which Tidemark does not do by itself")


class Prometheus(Peer):
    name = "prometheus"

    def start(self):
        cfg = os.path.join(os.path.dirname(self.data), "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        argv = [self.args.prometheus, "--config.file=" + cfg,
                "--storage.tsdb.path=" + self.data,
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--web.enable-remote-write-receiver", "--web.enable-admin-api"]
        return Server(self.name, argv, self.log_path, self.url + "/-/ready")

    def make_durable(self):
        t0 = time.time()
        status, body = http("POST", self.url + "/api/v1/admin/tsdb/snapshot")
        if status != 200:
            raise RuntimeError("prometheus snapshot: HTTP %s %s" % (status, body[:300]))
        name = json.loads(body)["data"]["name"]
        self.snapshot = os.path.join(self.data, "snapshots", name)
        self.notes.append("bytes/sample from a TSDB snapshot (all blocks plus the head written "
                          "as a block); the whole-dir row is the data dir after "
                          "shutdown (WAL + blocks, without the snapshot)")
        return time.time() - t0

    def disk_after_stop(self, result):
        result["disk_bytes"] = dir_bytes(self.snapshot)
        result["disk_bytes_all"] = dir_bytes(self.data,
                                             exclude=(os.path.join(self.data, "snapshots"),))


class VictoriaMetrics(Peer):
    name = "victoriametrics"
    query_params = {"nocache": "1"}

    def start(self):
        argv = [self.args.victoriametrics, "-storageDataPath=" + self.data,
                "-httpListenAddr=127.0.0.1:%d" % self.port, "-retentionPeriod=100y",
                "-loggerLevel=WARN"]
        if self.args.churn_test or self.args.size == "million":
            # A churn hour (or the million size) holds millions of series: lift the default
            # limits of 300,000 series per query and 30 s per query (to Tidemark's and
            # Prometheus's 2 min).
            argv += ["-search.maxUniqueTimeseries=100000000", "-search.maxQueryDuration=2m"]
            self.notes.append("-search.maxUniqueTimeseries=100000000, -search.maxQueryDuration=2m")
        return Server(self.name, argv, self.log_path, self.url + "/health")

    def _metrics(self):
        status, body = http("GET", self.url + "/metrics")
        out = {}
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("#") or " " not in line:
                continue
            k, v = line.rsplit(" ", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out

    def make_durable(self):
        t0 = time.time()
        http("GET", self.url + "/internal/force_flush")
        http("GET", self.url + "/internal/force_merge")
        time.sleep(1)
        quiet = 0
        while quiet < 3 and time.time() - t0 < 1800:
            m = self._metrics()
            busy = m.get("vm_active_force_merges", 0) + sum(
                v for k, v in m.items() if k.startswith("vm_active_merges"))
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(1)
        self.notes.append("force_flush, then force_merge, waited until no merge was active; "
                          "bytes/sample counts data/ and indexdb/ after shutdown (not the "
                          "rebuildable cache/ and tmp/ folders, shown in the whole-dir row); "
                          "queries sent with nocache=1 (no rollup result cache)")
        return time.time() - t0

    def disk_after_stop(self, result):
        result["disk_bytes"] = dir_bytes(self.data, exclude=(os.path.join(self.data, "cache"),
                                                             os.path.join(self.data, "tmp")))
        result["disk_bytes_all"] = dir_bytes(self.data)


PEER_CLASSES = {"tidemark": Tidemark, "prometheus": Prometheus, "victoriametrics": VictoriaMetrics}


# ---------------------------------------------------------------- measurement

def run_queries(peer, manifest, runs):
    end_s = manifest["end_ms"] / 1000.0
    params_base = {"start": "%.3f" % (end_s - 3600), "end": "%.3f" % end_s, "step": "15"}
    out = {}
    for name, expr in QUERIES:
        params = dict(params_base, query=expr, **peer.query_params)
        times = []
        result = None
        for i in range(runs + 1):  # the first run warms caches and is not counted
            t0 = time.perf_counter()
            try:
                status, body = http("GET", peer.url + "/api/v1/query_range", params=params)
            except OSError as e:  # a timeout or a dropped connection: reported, not fatal
                result = {"status": 0, "error": "no answer: %s (after %.0f s)" % (
                    e, time.perf_counter() - t0), "not_implemented": False}
                break
            dt = time.perf_counter() - t0
            if status != 200:
                msg = body.decode(errors="replace")[:200]
                result = {"status": status, "error": msg,
                          "not_implemented": status in (422, 501) and "not" in msg.lower()}
                break
            if i > 0:
                times.append(dt)
            else:
                data = json.loads(body)["data"]["result"]
                last = {}
                for s in data:
                    if s["values"]:
                        last[json.dumps(s["metric"], sort_keys=True)] = float(s["values"][-1][1])
                result = {"status": 200, "series": len(data),
                          "points": sum(len(s["values"]) for s in data),
                          "last_sum": sum(v for v in last.values() if v == v)}
        if times:
            result["median_s"] = statistics.median(times)
            result["runs"] = len(times)
        out[name] = result
    return out


def settle(pid, max_s=120, idle_cpu_s=0.05):
    """Waits until the process used < idle_cpu_s CPU-seconds in each of 3 consecutive seconds
    (background flushes and merges after ingest are done), at most max_s; returns seconds waited."""
    t0 = time.time()
    quiet = 0
    last = cpu_seconds(pid)
    while quiet < 3 and time.time() - t0 < max_s:
        time.sleep(1)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < idle_cpu_s else 0
        last = now
    return time.time() - t0


def bench_peer(cls, args, workdir, manifest, load_dir=None, durable=True):
    """Runs one peer on one load. durable=False (the churn test) queries the data as ingest left
    it, after the server went idle, instead of forcing flushes and merges first, and skips
    Tidemark's offline-compaction copy."""
    load_dir = load_dir or args.load_dir
    peer = cls(args, workdir)
    if not durable:
        peer.offline_compaction = False
    log("%s: starting on %s" % (peer.name, peer.url))
    server = peer.start()
    res = {"peer": peer.name}
    try:
        res["rss_start_kb"] = proc_status_kb(server.pid, "VmRSS")
        cpu0 = cpu_seconds(server.pid)
        log("%s: sending %d samples" % (peer.name, manifest["samples"]))
        t0 = time.time()
        send = subprocess.run([args.loadgen, "send", "--dir=" + load_dir,
                               "--url=" + peer.url + peer.write_path],
                              capture_output=True, text=True)
        wall = time.time() - t0
        if send.returncode != 0:
            raise RuntimeError("%s: loadgen send failed: %s %s" % (peer.name, send.stdout, send.stderr[-2000:]))
        res["send"] = json.loads(send.stdout.strip().splitlines()[-1])
        if send.stderr.strip():
            res["send_stderr"] = send.stderr.strip()[-1000:]
        res["ingest_cpu_s"] = cpu_seconds(server.pid) - cpu0
        res["ingest_wall_s"] = res["send"]["wall_seconds"]
        res["samples_per_s"] = manifest["samples"] / res["ingest_wall_s"]
        res["rss_after_ingest_kb"] = proc_status_kb(server.pid, "VmRSS")
        res["peak_rss_ingest_kb"] = proc_status_kb(server.pid, "VmHWM")
        log("%s: ingest %.1f s wall, %.1f CPU-s" % (peer.name, wall, res["ingest_cpu_s"]))

        cpu1 = cpu_seconds(server.pid)
        if durable:
            res["durable_wall_s"] = peer.make_durable()
        else:
            res["settle_wall_s"] = settle(server.pid)
            res["durable_wall_s"] = 0.0
        res["durable_cpu_s"] = cpu_seconds(server.pid) - cpu1

        log("%s: queries" % peer.name)
        res["queries"] = run_queries(peer, manifest, args.query_runs)
        res["peak_rss_kb"] = proc_status_kb(server.pid, "VmHWM")
        t_stop = time.time()
        cpu_before_stop = cpu_seconds(server.pid)
        code, total_cpu = server.stop()
        res["stop_wall_s"] = time.time() - t_stop
        res["stop_cpu_s"] = total_cpu - cpu_before_stop
        res["exit_code"] = code
        res["total_cpu_s"] = total_cpu
        peer.disk_after_stop(res)
        res["bytes_per_sample"] = res["disk_bytes"] / manifest["samples"]
        res["notes"] = peer.notes
        log("%s: %.3f bytes/sample, peak RSS %d MiB" %
            (peer.name, res["bytes_per_sample"], res["peak_rss_kb"] // 1024))
    finally:
        server.kill()
    return res


# ---------------------------------------------------------------- report

def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 100:
            return "{:,.0f}".format(v)
        return ("%." + str(digits) + "g") % v
    return "{:,}".format(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2f" % (a / b)


def figures(r, manifest):
    """The per-peer figures the report compares (None where not measured)."""
    m = manifest["samples"] / 1e6
    f = {
        "ingest CPU-s per million samples (while the load is sent)": r["ingest_cpu_s"] / m,
        "ingest + flush/compaction + shutdown CPU-s per million samples":
            (r["ingest_cpu_s"] + r["durable_cpu_s"] + r["stop_cpu_s"]) / m,
        "total CPU-s per million samples (whole life: ingest, flush/merge, queries, shutdown)":
            r["total_cpu_s"] / m,
        "samples/s ingested (wall)": r["samples_per_s"],
        "bytes per sample on disk": r["bytes_per_sample"],
        "bytes per sample, whole data dir after shutdown": r["disk_bytes_all"] / manifest["samples"],
        "bytes per sample after offline full RocksDB compaction (Tidemark only)":
            r["disk_bytes_offline_compacted"] / manifest["samples"]
            if "disk_bytes_offline_compacted" in r else None,
        "peak RSS while ingesting (MiB)": r["peak_rss_ingest_kb"] / 1024.0
            if "peak_rss_ingest_kb" in r else None,
        "peak RSS while ingesting, per active series (bytes)":
            r["peak_rss_ingest_kb"] * 1024.0 / manifest["series_active"]
            if "peak_rss_ingest_kb" in r else None,
        "peak RSS (MiB)": r["peak_rss_kb"] / 1024.0,
        "peak RSS per active series (bytes)": r["peak_rss_kb"] * 1024.0 / manifest["series_active"],
        "flush/compaction wall s": r["durable_wall_s"] + r.get("stop_wall_s", 0),
    }
    for name, _ in QUERIES:
        q = r["queries"].get(name, {})
        f["query %s median ms" % name] = q["median_s"] * 1000 if "median_s" in q else None
    return f


def query_cell(q):
    if q is None:
        return "-"
    if "median_s" in q:
        return "%.1f ms" % (q["median_s"] * 1000)
    if q.get("not_implemented"):
        return "n/a (not implemented)"
    return "error %s: %s" % (q.get("status"), q.get("error", "")[:60].replace("|", "/"))


def render(args, manifest, results, started, cmdline):
    by = {r["peer"]: r for r in results}
    order = [p for p in PEERS if p in by]
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    lines = []
    lines.append("## Size `%s`: %s active series (%s distinct), %s h at %s s, %s samples" % (
        args.size_name, fmt(manifest["series_active"]), fmt(manifest["series_total"]),
        fmt(manifest["steps"] * manifest["interval_ms"] / 3.6e6), fmt(manifest["interval_ms"] / 1000),
        fmt(manifest["samples"])))
    lines.append("")
    lines.append("- date: %s; command: `%s`" % (started.strftime("%Y-%m-%d %H:%M UTC"), cmdline))
    lines.append("- machine: %d cores (%s), %.1f GiB memory, %s; load: %d connections, %d samples/request, "
                 "seed %d, churn %.2f, jitter ±%d ms, %s requests (%.1f MiB snappy)" % (
                     os.cpu_count(), platform.processor() or platform.machine(), mem_kb / 1048576.0,
                     platform.platform(), manifest["connections"], manifest["batch"], manifest["seed"],
                     manifest["churn"], manifest["jitter_ms"], fmt(manifest["requests"]),
                     manifest["request_bytes"] / 1048576.0))
    if args.note:
        lines.append("- note: %s" % args.note)
    lines.append("")
    header = "| figure | " + " | ".join(order)
    sep = "| --- | " + " | ".join("---" for _ in order)
    has_tm = "tidemark" in by
    if has_tm and "victoriametrics" in by:
        header += " | Tidemark / VictoriaMetrics"
        sep += " | ---"
    if has_tm and "prometheus" in by:
        header += " | Tidemark / Prometheus"
        sep += " | ---"
    lines += [header + " |", sep + " |"]
    figs = {p: figures(by[p], manifest) for p in order}
    for key in figs[order[0]]:
        row = "| %s | " % key
        cells = []
        for p in order:
            v = figs[p][key]
            if key.startswith("query "):
                cells.append(query_cell(by[p]["queries"].get(key.split()[1])))
            else:
                cells.append(fmt(v))
        row += " | ".join(cells)
        if has_tm and "victoriametrics" in by:
            row += " | " + ratio(figs["tidemark"][key], figs["victoriametrics"][key])
        if has_tm and "prometheus" in by:
            row += " | " + ratio(figs["tidemark"][key], figs["prometheus"][key])
        lines.append(row + " |")
    lines.append("")

    # Targets of issue 3 that this run can judge.
    if has_tm and "victoriametrics" in by:
        t, v = figs["tidemark"], figs["victoriametrics"]
        lines.append("Targets (issue 3) judged on this run:")
        lines.append("")
        lines.append("| target | measured | met |")
        lines.append("| --- | --- | --- |")
        key = "ingest + flush/compaction + shutdown CPU-s per million samples"
        c = t[key] / v[key]
        lines.append("| CPU per million samples (ingest + flush/compaction + shutdown) ≤ 0.5 × "
                     "VictoriaMetrics | %.2f × | %s |" % (c, "yes" if c <= 0.5 else "**no**"))
        b = t["bytes per sample on disk"] / v["bytes per sample on disk"]
        lines.append("| bytes/sample ≤ 0.8 × VictoriaMetrics | %.2f × | %s |" % (b, "yes" if b <= 0.8 else "**no**"))
        rs = t["peak RSS per active series (bytes)"]
        rr = rs / v["peak RSS per active series (bytes)"]
        scope = "" if manifest["series_active"] >= 1000000 else \
            " (only meaningful at 1 M series: at this size the fixed cost of the process dominates)"
        lines.append("| peak RSS ≤ 1 KB/series and ≤ 0.8 × VictoriaMetrics, whole run (ingest and "
                     "the dashboard queries)%s | %s B/series, %.2f × | %s |" % (
                         scope, fmt(rs), rr, "yes" if rs <= 1024 and rr <= 0.8 else "**no**"))
        ik = "peak RSS while ingesting, per active series (bytes)"
        if t.get(ik) and v.get(ik):
            ri = t[ik] / v[ik]
            lines.append("| the same, while ingesting only%s | %s B/series, %.2f × | %s |" % (
                scope, fmt(t[ik]), ri, "yes" if t[ik] <= 1024 and ri <= 0.8 else "**no**"))
        lines.append("| restart after kill -9 with 1 M series ≤ 10 s | not measured by this benchmark | - |")
        lines.append("| churn: recent-hour query latency within 20%% of no churn | measured by "
                     "`bench/run.py --churn-test` (section `churn`); this load has %.0f%% churning "
                     "pod slots | - |" % (manifest["churn"] * 100))
        lines.append("")

    # Query agreement (Tidemark vs Prometheus: same PromQL semantics).
    if has_tm and "prometheus" in by:
        lines.append("Query results, Tidemark vs Prometheus (series count; sum of the last point of every "
                     "series): VictoriaMetrics is left out because MetricsQL's rate() does not extrapolate.")
        lines.append("")
        lines.append("| query | expr | tidemark | prometheus | agree |")
        lines.append("| --- | --- | --- | --- | --- |")
        for name, expr in QUERIES:
            a = by["tidemark"]["queries"].get(name, {})
            b = by["prometheus"]["queries"].get(name, {})
            def cell(q):
                return "%s; %.6g" % (q["series"], q["last_sum"]) if "series" in q else query_cell(q)
            agree = "-"
            if "series" in a and "series" in b:
                same = a["series"] == b["series"] and abs(a["last_sum"] - b["last_sum"]) <= \
                    1e-6 * max(1.0, abs(b["last_sum"]))
                agree = "yes" if same else "**no**"
            lines.append("| %s | `%s` | %s | %s | %s |" % (name, expr, cell(a), cell(b), agree))
        lines.append("")

    lines.append("How each peer was made durable and compacted:")
    lines.append("")
    for p in order:
        extra = ""
        rej = by[p]["send"]["rejected_requests"]
        if rej:
            extra += " **%d requests were rejected** (%s)." % (rej, by[p].get("send_stderr", "")[:200])
        lines.append("- %s: %s.%s" % (p, "; ".join(by[p]["notes"]) or "-", extra))
    lines.append("")
    return "\n".join(lines)


def render_churn(args, manifests, results, started, cmdline):
    """The churn test's section: per peer, the baseline (key "nochurn": the same churning load
    over the queried hour only) and the churn-history run (key "churn") side by side."""
    m0, m1 = manifests["nochurn"], manifests["churn"]
    hours = m1["steps"] * m1["interval_ms"] / 3.6e6
    hours0 = m0["steps"] * m0["interval_ms"] / 3.6e6
    order = [p for p in PEERS if p in results]
    lines = []
    lines.append("## Series churn (`%s`): %s active series, %s h at %s s; %s new series per hour "
                 "for %s h vs only the queried hour" % (
                     args.size_name, fmt(m1["series_active"]), fmt(hours),
                     fmt(m1["interval_ms"] / 1000), fmt(m1["series_new_per_hour"]), fmt(hours)))
    lines.append("")
    lines.append("- date: %s; command: `%s`" % (started.strftime("%Y-%m-%d %H:%M UTC"), cmdline))
    lines.append("- machine: %d cores (%s), %s; load: %d connections, %d samples/request, seed %d, "
                 "jitter ±%d ms" % (os.cpu_count(), platform.processor() or platform.machine(),
                                    platform.platform(), m1["connections"], m1["batch"], m1["seed"],
                                    m1["jitter_ms"]))
    lines.append("- loads, both `--churn=1` (every pod replaced after %g..%g min), same seed and "
                 "end time: **baseline** over %s h (the queried hour and the queries' lookback, no "
                 "history): %s distinct series, %s with samples in the queried hour, %s new per "
                 "hour, %s samples; **churn history** over %s h: %s distinct series, %s with "
                 "samples in the queried hour, %s new per hour, %s samples" % (
                     m1["churn_lifetime_min_minutes"], m1["churn_lifetime_max_minutes"],
                     fmt(hours0, 4), fmt(m0["series_total"]), fmt(m0["series_last_hour"]),
                     fmt(m0["series_new_per_hour"]), fmt(m0["samples"]), fmt(hours),
                     fmt(m1["series_total"]), fmt(m1["series_last_hour"]),
                     fmt(m1["series_new_per_hour"]), fmt(m1["samples"])))
    if m1["series_new_per_hour"] < 1e6:
        lines.append("- at this size the load makes %s new series per hour, below issue 3's "
                     "1 M/h: not the target's size" % fmt(m1["series_new_per_hour"]))
    if args.note:
        lines.append("- note: %s" % args.note)
    lines.append("")
    lines.append("Each peer ran each load on a fresh data directory; after ingest it was left "
                 "until idle (no forced flush or merge: the recent hour is queried as ingest left "
                 "it), then the dashboard queries ran over the last hour of the load (same "
                 "queries as the other sections; one warm-up, median of %d runs). Both loads put "
                 "about the same series in that hour; they differ only in the older, no longer "
                 "active series before it." % args.query_runs)
    lines.append("")

    header = "| figure | " + " | ".join("%s baseline | %s churn history | history / baseline" % (p, p)
                                       for p in order) + " |"
    sep = "| --- |" + " --- | --- | --- |" * len(order)
    lines += [header, sep]

    def row(label, fn, digits=3, show_ratio=True):
        cells = []
        for p in order:
            a, b = fn(results[p]["nochurn"], m0), fn(results[p]["churn"], m1)
            cells += [fmt(a, digits), fmt(b, digits), ratio(b, a) if show_ratio else "-"]
        lines.append("| %s | %s |" % (label, " | ".join(cells)))

    row("distinct series in the load", lambda r, m: m["series_total"], show_ratio=False)
    row("series with samples in the queried hour", lambda r, m: m["series_last_hour"])
    row("new series per hour of data", lambda r, m: m["series_new_per_hour"], show_ratio=False)
    row("new series per second of ingest (wall)",
        lambda r, m: m["series_new"] / r["ingest_wall_s"], show_ratio=False)
    row("ingest CPU-s per million samples", lambda r, m: r["ingest_cpu_s"] / (m["samples"] / 1e6))
    row("samples/s ingested (wall)", lambda r, m: r["samples_per_s"])
    row("background CPU-s after ingest, until idle", lambda r, m: r["durable_cpu_s"])
    row("peak RSS (MiB)", lambda r, m: r["peak_rss_kb"] / 1024.0)
    row("bytes per sample on disk after shutdown", lambda r, m: r["bytes_per_sample"])
    for name, _ in QUERIES:
        row("query %s median ms" % name,
            lambda r, m, name=name: r["queries"][name]["median_s"] * 1000
            if "median_s" in r["queries"].get(name, {}) else None)
    row("dashboard: sum of the query medians, ms", lambda r, m: dashboard_ms(r))
    lines.append("")

    lines.append("Query answers (series returned, baseline / churn history): " + "; ".join(
        "%s %s" % (name, ", ".join("%s %s/%s" % (p, results[p]["nochurn"]["queries"].get(name, {}).get("series", "-"),
                                                  results[p]["churn"]["queries"].get(name, {}).get("series", "-"))
                                    for p in order)) for name, _ in QUERIES) + ".")
    lines.append("")

    lines.append("Target (issue 3): with ~1 M new series per hour for hours, recent-hour query "
                 "latency within %d%% of the no-churn case, i.e. not slowed down by the older, "
                 "no longer active series: judged on the dashboard (sum of the query medians), "
                 "churn history / baseline; panels above %.1f x are in bold." % (
                     round((CHURN_TARGET - 1) * 100), CHURN_TARGET))
    lines.append("")
    lines.append("| peer | dashboard history / baseline | per panel | met |")
    lines.append("| --- | --- | --- | --- |")
    for p in order:
        j = churn_judgement(results[p])
        panels = ", ".join(("**%s %.2f**" if v > CHURN_TARGET else "%s %.2f") % (k, v)
                           for k, v in j["panels"].items())
        met = "-"
        if j["dashboard_ratio"] is not None:
            met = "yes" if j["dashboard_ratio"] <= CHURN_TARGET else "**no**"
            if m1["series_new_per_hour"] < 1e6:
                met += " (below the target's churn rate)"
        lines.append("| %s | %s | %s | %s |" % (
            p, "-" if j["dashboard_ratio"] is None else "%.2f x" % j["dashboard_ratio"],
            panels or "-", met if p == "tidemark" else met + " (reference)"))
    lines.append("")
    for p in order:
        if results[p]["churn"]["notes"]:
            lines.append("- %s: %s" % (p, "; ".join(results[p]["churn"]["notes"])))
        for load in ("nochurn", "churn"):
            r = results[p][load]
            load = {"nochurn": "baseline", "churn": "churn history"}[load]
            if r["send"]["rejected_requests"]:
                lines.append("- %s, %s: **%d requests were rejected** (%s)" % (
                    p, load, r["send"]["rejected_requests"], r.get("send_stderr", "")[:200]))
            bad = [n for n, q in r["queries"].items() if "median_s" not in q]
            if bad:
                lines.append("- %s, %s: queries without an answer: %s" % (
                    p, load, ", ".join("%s (%s)" % (n, query_cell(r["queries"][n])) for n in bad)))
    return "\n".join(lines).rstrip("\n") + "\n"


def dashboard_ms(r):
    """Sum of the query medians (ms), or None if a query had no answer."""
    qs = [r["queries"].get(name, {}) for name, _ in QUERIES]
    if any("median_s" not in q for q in qs):
        return None
    return sum(q["median_s"] for q in qs) * 1000


def churn_judgement(by_load):
    a, b = by_load["nochurn"], by_load["churn"]
    panels = {}
    for name, _ in QUERIES:
        qa, qb = a["queries"].get(name, {}), b["queries"].get(name, {})
        if "median_s" in qa and "median_s" in qb and qa["median_s"] > 0:
            panels[name] = qb["median_s"] / qa["median_s"]
    da, db = dashboard_ms(a), dashboard_ms(b)
    return {"dashboard_ratio": db / da if da and db is not None else None, "panels": panels}


def publish(args, section, raw):
    """Writes the section into RESULTS.md and the raw figures to results/<size>.json."""
    write_results(args.results, args.size_name, section)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", args.size_name + ".json"), "w") as f:
        json.dump(raw, f, indent=1)
    print(section)
    log("wrote %s" % args.results)


def write_results(path, size_name, section):
    begin = "<!-- run:%s begin -->" % size_name
    end = "<!-- run:%s end -->" % size_name
    block = begin + "\n" + section + "\n" + end
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        if not text:
            text = ("# Benchmark results: Tidemark vs VictoriaMetrics vs Prometheus\n\n"
                    "Produced by `bench/run.py` (see bench/README.md). Each size's section is "
                    "replaced when that size is run again; ratios are Tidemark / peer, so below 1 "
                    "means Tidemark uses less (for samples/s, below 1 means Tidemark is slower).\n\n")
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- main

def build(args):
    build_dir = args.build_dir
    lock = ["flock", "/tmp/tidemark-build.lock"] if shutil.which("flock") else []
    if not os.path.exists(os.path.join(build_dir, "build.ninja")) and \
            not os.path.exists(os.path.join(build_dir, "Makefile")):
        subprocess.run(lock + ["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja",
                               "-DCMAKE_BUILD_TYPE=Release"], check=True)
    subprocess.run(lock + ["cmake", "--build", build_dir, "--target", "tidemark", "loadgen", "-j2"],
                   check=True)


def churn_main(args, peers):
    """--churn-test: per peer, the full-churn load over the recent hour only (the baseline, key
    "nochurn") and over the whole span (key "churn"), same series, seed and end time."""
    size = dict(CHURN_SIZE)
    for k in ("series", "hours", "interval_s"):
        if getattr(args, k) is not None:
            size[k] = getattr(args, k)
    if args.churn_lifetime_min is not None:
        size["lifetime_min"] = args.churn_lifetime_min
    if args.churn_lifetime_max is not None:
        size["lifetime_max"] = args.churn_lifetime_max
    if args.churn_lifetime_min is not None and args.churn_lifetime_max is None:
        size["lifetime_max"] = 2 * size["lifetime_min"]
    if size != CHURN_SIZE:
        args.size_name = "churn-custom-%ds-%gh-%g-%gmin" % (
            size["series"], size["hours"], size["lifetime_min"], size["lifetime_max"])
    else:
        args.size_name = "churn"
    started = datetime.datetime.now(datetime.timezone.utc)
    cmdline = "python3 bench/run.py " + shlex.join(sys.argv[1:])
    workdir = tempfile.mkdtemp(prefix="tidemark-churn-")
    # Both loads end at the same instant, so the queried hour is the same.
    now_ms = int(time.time() * 1000)
    end_ms = now_ms - now_ms % int(size["interval_s"] * 1000)
    # The baseline is the same churning load without the history before the queried hour: the
    # recent hour holds as many series, created at the same rate, but nothing older.
    spans = {"nochurn": min(size["hours"], CHURN_BASELINE_HOURS), "churn": size["hours"]}
    manifests, load_dirs = {}, {}
    results = {p: {} for p in peers}
    try:
        for load in ("nochurn", "churn"):
            load_dirs[load] = os.path.join(workdir, "load-" + load)
            log("generating the %s load (%.4g h) in %s" % (load, spans[load], load_dirs[load]))
            gen = subprocess.run([args.loadgen, "generate", "--out=" + load_dirs[load],
                                  "--series=%d" % size["series"], "--hours=%.6f" % spans[load],
                                  "--interval-s=%g" % size["interval_s"],
                                  "--connections=%d" % args.connections, "--batch=%d" % args.batch,
                                  "--seed=%d" % args.seed, "--churn=1",
                                  "--churn-lifetime-min=%g" % size["lifetime_min"],
                                  "--churn-lifetime-max=%g" % size["lifetime_max"],
                                  "--jitter-ms=%d" % args.jitter_ms, "--end-ms=%d" % end_ms],
                                 capture_output=True, text=True, check=True)
            manifests[load] = json.loads(gen.stdout.strip().splitlines()[-1])
            log("%s load: %s" % (load, json.dumps(manifests[load])))
        for p in peers:
            for load in ("nochurn", "churn"):
                log("churn test: %s, %s load" % (p, load))
                run_dir = os.path.join(workdir, "%s-%s" % (p, load))
                os.makedirs(run_dir)
                results[p][load] = bench_peer(PEER_CLASSES[p], args, run_dir, manifests[load],
                                              load_dir=load_dirs[load], durable=False)
                if not args.keep:  # the data dirs of a big run take many GB
                    shutil.rmtree(run_dir, ignore_errors=True)
            j = churn_judgement(results[p])
            log("%s: dashboard churn history / baseline = %s" % (
                p, "-" if j["dashboard_ratio"] is None else "%.2f" % j["dashboard_ratio"]))
        publish(args, render_churn(args, manifests, results, started, cmdline),
                {"manifests": manifests, "results": results,
                 "judgement": {p: churn_judgement(results[p]) for p in peers},
                 "date": started.isoformat(), "command": cmdline})
    finally:
        if args.keep:
            log("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), help="default: default")
    ap.add_argument("--churn-test", action="store_true",
                    help="the series-churn test instead: ~1 M new series/h for --hours vs for the "
                         "queried hour only (default "
                         "%(series)d series, %(hours)g h, lifetimes %(lifetime_min)g..%(lifetime_max)g min, "
                         "peers tidemark,victoriametrics)" % CHURN_SIZE)
    ap.add_argument("--churn-lifetime-min", type=float,
                    help="minutes a churning pod lives at least (loadgen default 30; churn test 4)")
    ap.add_argument("--churn-lifetime-max", type=float,
                    help="minutes a churning pod lives at most (loadgen default 120; churn test 8; "
                         "2 x the minimum if only that is given)")
    ap.add_argument("--series", type=int, help="override the size's active series")
    ap.add_argument("--hours", type=float, help="override the size's time span")
    ap.add_argument("--interval-s", type=float, help="override the scrape interval")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2000, help="samples per remote-write request")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--churn", type=float, default=0.2, help="fraction of pod slots that are replaced")
    ap.add_argument("--jitter-ms", type=int, default=2, help="scrape timestamp jitter, ± ms")
    ap.add_argument("--peers", help="default: %s (churn test: %s)" % (",".join(PEERS), ",".join(CHURN_PEERS)))
    ap.add_argument("--query-runs", type=int, default=5)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    ap.add_argument("--tidemark", help="tidemark binary (default BUILD/tools/tidemark)")
    ap.add_argument("--tidemark-arg", action="append", default=[], help="extra flag for tidemark serve")
    ap.add_argument("--loadgen", help="loadgen binary (default BUILD/bench/loadgen)")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--victoriametrics", default=shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics")
    ap.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--note", default="", help="a line added to the report (e.g. machine load)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.churn_test and args.size:
        ap.error("--churn-test has its own size: use --series, --hours, --churn-lifetime-min/max")
    args.size = args.size or "default"
    args.peers = args.peers or ",".join(CHURN_PEERS if args.churn_test else PEERS)

    size = dict(SIZES[args.size])
    for k in ("series", "hours", "interval_s"):
        if getattr(args, k) is not None:
            size[k] = getattr(args, k)
    custom = size != SIZES[args.size]
    args.size_name = args.size if not custom else "%s-custom-%ds-%gh" % (args.size, size["series"], size["hours"])
    args.tidemark = args.tidemark or os.path.join(args.build_dir, "tools", "tidemark")
    args.loadgen = args.loadgen or os.path.join(args.build_dir, "bench", "loadgen")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for p in peers:
        if p not in PEER_CLASSES:
            ap.error("unknown peer %s" % p)
    if not args.no_build:
        build(args)
    for binary in [args.tidemark, args.loadgen] + [getattr(args, p) for p in ("prometheus", "victoriametrics")
                                                   if p in peers]:
        if not os.access(binary, os.X_OK):
            sys.exit("missing %s (`bash scripts/install-deps.sh --bench` installs the peers; build with cmake)" % binary)
    if args.churn_test:
        churn_main(args, peers)
        return

    started = datetime.datetime.now(datetime.timezone.utc)
    cmdline = "python3 bench/run.py " + shlex.join(sys.argv[1:])
    workdir = tempfile.mkdtemp(prefix="tidemark-bench-")
    args.load_dir = os.path.join(workdir, "load")
    os.makedirs(args.load_dir)
    results = []
    try:
        log("generating the load in %s" % args.load_dir)
        gen = subprocess.run([args.loadgen, "generate", "--out=" + args.load_dir,
                              "--series=%d" % size["series"], "--hours=%g" % size["hours"],
                              "--interval-s=%g" % size["interval_s"],
                              "--connections=%d" % args.connections, "--batch=%d" % args.batch,
                              "--seed=%d" % args.seed, "--churn=%g" % args.churn,
                              "--jitter-ms=%d" % args.jitter_ms] +
                             (["--churn-lifetime-min=%g" % args.churn_lifetime_min]
                              if args.churn_lifetime_min is not None else []) +
                             (["--churn-lifetime-max=%g" % args.churn_lifetime_max]
                              if args.churn_lifetime_max is not None else []),
                             capture_output=True, text=True, check=True)
        manifest = json.loads(gen.stdout.strip().splitlines()[-1])
        log("load: %s" % json.dumps(manifest))
        for p in peers:
            results.append(bench_peer(PEER_CLASSES[p], args, workdir, manifest))
        publish(args, render(args, manifest, results, started, cmdline),
                {"manifest": manifest, "results": results, "date": started.isoformat(),
                 "command": cmdline})
    finally:
        if args.keep:
            log("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
