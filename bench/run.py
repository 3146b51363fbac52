#!/usr/bin/env python3
"""Side-by-side benchmark: Tidemark vs VictoriaMetrics vs Prometheus on the same remote-write load.

    python3 bench/run.py --size quick          # ~2,000 series x 1 h, a few minutes
    python3 bench/run.py                       # 10,000 series x 6 h at 15 s (the issue's load)
    python3 bench/run.py --size million        # 1,000,000 series x 1 h (needs time and memory)

One peer after another, each on a fresh temporary data directory and a free loopback port: start
it, send it the same pre-generated requests (bench/loadgen), make it durable and compacted, run a
set of Grafana-like range queries, stop it cleanly. Reports server CPU-seconds (from /proc and the
child's rusage), samples/s, bytes per sample on disk, peak RSS and query latencies, with the ratios
Tidemark/VictoriaMetrics and Tidemark/Prometheus, into bench/RESULTS.md (the section of this size
is replaced; other sections are kept) and the raw figures into bench/results/<size>.json.

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


def bench_peer(cls, args, workdir, manifest):
    peer = cls(args, workdir)
    log("%s: starting on %s" % (peer.name, peer.url))
    server = peer.start()
    res = {"peer": peer.name}
    try:
        res["rss_start_kb"] = proc_status_kb(server.pid, "VmRSS")
        cpu0 = cpu_seconds(server.pid)
        log("%s: sending %d samples" % (peer.name, manifest["samples"]))
        t0 = time.time()
        send = subprocess.run([args.loadgen, "send", "--dir=" + args.load_dir,
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
        log("%s: ingest %.1f s wall, %.1f CPU-s" % (peer.name, wall, res["ingest_cpu_s"]))

        cpu1 = cpu_seconds(server.pid)
        res["durable_wall_s"] = peer.make_durable()
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
        lines.append("| peak RSS ≤ 1 KB/series and ≤ 0.8 × VictoriaMetrics%s | %s B/series, %.2f × | %s |" % (
            scope, fmt(rs), rr, "yes" if rs <= 1024 and rr <= 0.8 else "**no**"))
        lines.append("| restart after kill -9 with 1 M series ≤ 10 s | not measured by this benchmark | - |")
        lines.append("| churn: recent-hour query latency within 20%% of no churn | not measured by this benchmark "
                     "(the load has %.0f%% churning pod slots) | - |" % (manifest["churn"] * 100))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--series", type=int, help="override the size's active series")
    ap.add_argument("--hours", type=float, help="override the size's time span")
    ap.add_argument("--interval-s", type=float, help="override the scrape interval")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2000, help="samples per remote-write request")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--churn", type=float, default=0.2, help="fraction of pod slots that are replaced")
    ap.add_argument("--jitter-ms", type=int, default=2, help="scrape timestamp jitter, ± ms")
    ap.add_argument("--peers", default=",".join(PEERS))
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
                              "--jitter-ms=%d" % args.jitter_ms],
                             capture_output=True, text=True, check=True)
        manifest = json.loads(gen.stdout.strip().splitlines()[-1])
        log("load: %s" % json.dumps(manifest))
        for p in peers:
            results.append(bench_peer(PEER_CLASSES[p], args, workdir, manifest))
        section = render(args, manifest, results, started, cmdline)
        write_results(args.results, args.size_name, section)
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", args.size_name + ".json"), "w") as f:
            json.dump({"manifest": manifest, "results": results, "date": started.isoformat(),
                       "command": cmdline}, f, indent=1)
        print(section)
        log("wrote %s" % args.results)
    finally:
        if args.keep:
            log("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
