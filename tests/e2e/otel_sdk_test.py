"""End-to-end: the OpenTelemetry JavaScript SDK (from npm) exports metrics to Tidemark over
OTLP/HTTP, protobuf and JSON, cumulative and delta; the series, labels, target_info and values
are checked through PromQL. The delta exporter keeps running across a Tidemark restart, and its
counters must continue as correct cumulative series.

usage: otel_sdk_test.py TIDEMARK_BINARY
Exits 77 (skipped) only when the npm packages are not installed and `npm ci` cannot install them.
"""

import os
import shutil
import subprocess
import sys
import threading
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
OTEL_DIR = os.path.join(HERE, "otel")
SKIP = 77


def ensure_node_modules():
    marker = os.path.join(OTEL_DIR, "node_modules", "@opentelemetry", "sdk-metrics", "package.json")
    if os.path.exists(marker):
        return True
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        print("SKIP: node/npm not installed (scripts/install-deps.sh installs them)")
        return False
    try:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OTEL_DIR,
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        print("SKIP: npm ci in %s timed out" % OTEL_DIR)
        return False
    if r.returncode != 0 or not os.path.exists(marker):
        print("SKIP: npm ci in %s failed:\n%s" % (OTEL_DIR, (r.stdout + r.stderr)[-2000:]))
        return False
    return True


class Node:
    """export.js in a child process; its stdout lines are collected as they come."""

    def __init__(self, mode, url):
        self.proc = subprocess.Popen(["node", os.path.join(OTEL_DIR, "export.js"), mode, url],
                                     cwd=OTEL_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<eof>")
            self.cond.notify_all()

    def wait_for(self, text, timeout=60):
        deadline = time.time() + timeout
        with self.cond:
            while text not in self.lines:
                if "<eof>" in self.lines:
                    raise AssertionError("export.js ended before %r:\n%s" % (text, "\n".join(self.lines)))
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("timed out waiting for %r:\n%s" % (text, "\n".join(self.lines)))
                self.cond.wait(left)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=60):
        self.wait_for("done", timeout)
        self.proc.wait(timeout=timeout)
        failed = [l for l in self.lines if l.startswith("export failed") or l.startswith("error")]
        if failed or self.proc.returncode != 0:
            raise AssertionError("export.js reported failures:\n%s" % "\n".join(self.lines))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def instant(server, expr):
    status, body = server.query(expr, time.time())
    assert status == 200, (expr, status, body)
    return {tuple(sorted(r["metric"].items())): r["value"][1] for r in body["data"]["result"]}


def one(server, expr):
    got = instant(server, expr)
    assert len(got) == 1, "%s: want one series, got %s" % (expr, got)
    return next(iter(got.items()))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def check_cumulative(server):
    scope = {"otel_scope_name": "e2e-meter", "otel_scope_version": "1.0.0"}
    base = dict(job="shop/checkout", instance="pod-1", **scope)

    labels, value = one(server, 'orders_placed_total{method="card"}')
    check(dict(labels) == dict(base, __name__="orders_placed_total", method="card"), labels)
    check(value == "3", value)
    check(one(server, 'orders_placed_total{method="cash"}')[1] == "2", "cash orders")

    labels, value = one(server, "queue_size")
    check(dict(labels) == dict(base, __name__="queue_size"), labels)
    check(value == "3", "up-down counter: %s" % value)

    labels, value = one(server, "temperature_celsius")
    check(dict(labels) == dict(base, __name__="temperature_celsius", room="lab"), labels)
    check(value == "21.5", value)

    buckets = {dict(k)["le"]: v for k, v in
               instant(server, 'http_server_duration_milliseconds_bucket{route="/pay"}').items()}
    check(buckets == {"10": "1", "100": "2", "1000": "3", "+Inf": "4"}, buckets)
    check(one(server, "http_server_duration_milliseconds_sum")[1] == "5555", "histogram sum")
    check(one(server, "http_server_duration_milliseconds_count")[1] == "4", "histogram count")

    # Exponential histogram (scale capped at 0): 0.5 in (0.25,0.5], 1.5 in (1,2], 3 in (2,4].
    exp = {dict(k)["le"]: v for k, v in instant(server, "rpc_duration_seconds_bucket").items()}
    check(exp.get("+Inf") == "3" and exp.get("0.5") == "1" and exp.get("2") == "2" and
          exp.get("4") == "3", exp)
    check(one(server, "rpc_duration_seconds_count")[1] == "3", "exp histogram count")
    check(one(server, "rpc_duration_seconds_sum")[1] == "5", "exp histogram sum")
    # histogram_quantile works on the converted buckets.
    q = float(one(server, "histogram_quantile(0.5, rpc_duration_seconds_bucket)")[1])
    check(1 <= q <= 2, "median %s" % q)

    labels, value = one(server, 'target_info{job="shop/checkout"}')
    info = dict(labels)
    check(value == "1", value)
    check(info.get("host_name") == "h1" and info.get("deployment_environment") == "e2e" and
          info.get("instance") == "pod-1", info)
    check("service_name" not in info and "service_instance_id" not in info, info)

    # Metadata per family, as Prometheus 3's receiver records it (unit as its Prometheus word).
    status, body = harness.get_json(server.url + "/api/v1/metadata")
    check(status == 200, body)
    md = body["data"]
    check(md.get("orders_placed_total", [{}])[0].get("type") == "counter", md)
    check(md.get("queue_size", [{}])[0].get("type") == "gauge", md)
    check(md.get("http_server_duration_milliseconds") ==
          [dict(md["http_server_duration_milliseconds"][0], type="histogram", unit="milliseconds")],
          md)
    check(md.get("rpc_duration_seconds", [{}])[0].get("unit") == "seconds", md)
    check(md.get("temperature_celsius", [{}])[0].get("unit") == "celsius", md)


def check_delta(server, want_total, want_counts):
    labels, value = one(server, "jobs_done_total")
    check(dict(labels) == {"__name__": "jobs_done_total", "job": "worker", "instance": "w-1",
                           "queue": "q1", "otel_scope_name": "e2e-meter",
                           "otel_scope_version": "1.0.0"}, labels)
    check(value == str(want_total), "jobs_done_total = %s, want %s" % (value, want_total))
    status, body = server.query("jobs_done_total[10m]", time.time())
    values = [v for _, v in body["data"]["result"][0]["values"]]
    check(values == [str(v) for v in want_counts], "cumulative samples %s" % values)
    check(one(server, 'job_duration_seconds_count')[1] == str(len(want_counts)), "delta histogram")


def main():
    tidemark_bin = sys.argv[1]
    if not ensure_node_modules():
        sys.exit(SKIP)
    work = harness.temp_dir("tidemark-otel-")
    server = harness.Tidemark(tidemark_bin, os.path.join(work, "data"), work)
    nodes = []
    try:
        server.start()
        cumulative = Node("cumulative", server.url + "/v1/metrics")
        nodes.append(cumulative)
        cumulative.finish()
        check_cumulative(server)

        delta = Node("delta", server.url + "/api/v1/otlp/v1/metrics")
        nodes.append(delta)
        delta.wait_for("waiting")
        check_delta(server, 8, [5, 8])
        # Restart Tidemark while the producer keeps its delta state; the running totals live in
        # the database.
        check(server.process.terminate() == 0, "clean shutdown")
        server.start()
        delta.send("go")
        delta.finish()
        check_delta(server, 12, [5, 8, 12])
        buckets = {dict(k)["le"]: v for k, v in instant(server, "job_duration_seconds_bucket").items()}
        check(buckets == {"1": "1", "10": "2", "+Inf": "3"}, buckets)
        check(one(server, "job_duration_seconds_sum")[1] == "25.5", "delta histogram sum")
        print("otel sdk e2e: ok")
    except Exception:
        if server.process is not None:
            print(server.process.tail(), file=sys.stderr)
        raise
    finally:
        for n in nodes:
            n.kill()
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
