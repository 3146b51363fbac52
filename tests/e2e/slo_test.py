"""End-to-end test of `tidemark slo report` (and `tidemark query`/`labels`/`series`).

A deterministic month of request counters and latency histograms, with known outages, is
remote-written (protobuf and snappy encoded here, by hand) into a Tidemark started by the test
and into a real Prometheus 2.42. The report is run through --server (Tidemark), --storage.path
(the same data directory, read-only, while the server keeps running and receiving writes) and
--server (Prometheus), and every figure is checked against values computed here independently.
A second Tidemark with auth tokens and three tenants checks --token, --token-file and --tenant
(401/403 as clear errors, each tenant's own figures); promtool checks the `slo rules` output.

usage: slo_test.py TIDEMARK_BINARY PROMETHEUS_BINARY
"""

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import harness

MIN = 60_000
DAY_MIN = 1440
N = 30 * DAY_MIN                      # one sample per minute, indices 0..N
T0 = 1709251200000                    # 2024-03-01T00:00:00Z
END = T0 + N * MIN                    # 2024-03-31T00:00:00Z
MID = T0 + (19 * DAY_MIN + 720) * MIN  # 2024-03-20T12:00:00Z, for the calendar report

# ---------------------------------------------------------------------------- the data


def bad_increment(i):
    """HTTP 500s in the minute ending at index i."""
    n = 1 if i % 100 == 0 else 0
    if 5 * DAY_MIN + 600 < i <= 5 * DAY_MIN + 660:   # day 5, 10:00-11:00: 20/min
        n += 20
    if 20 * DAY_MIN + 180 < i <= 20 * DAY_MIN + 210:  # day 20, 03:00-03:30: 30/min
        n += 30
    if i > N - 45:                                     # the last 45 minutes: 30/min
        n += 30
    return n


def slow_increment(i):
    """Requests slower than 0.3s in the minute ending at index i."""
    n = 2 if i % 50 == 0 else 0
    if 12 * DAY_MIN + 840 < i <= 12 * DAY_MIN + 1080:  # day 12, 14:00-18:00: 20/min
        n += 20
    return n


def build_series():
    """{labels tuple: [counter value at index 0..N]}."""
    incs = {
        (("__name__", "http_requests_total"), ("code", "200"), ("job", "web")):
            lambda i: 100 - bad_increment(i),
        (("__name__", "http_requests_total"), ("code", "500"), ("job", "web")): bad_increment,
        (("__name__", "http_request_duration_seconds_bucket"), ("job", "web"), ("le", "0.1")):
            lambda i: 80 - slow_increment(i),
        (("__name__", "http_request_duration_seconds_bucket"), ("job", "web"), ("le", "0.3")):
            lambda i: 100 - slow_increment(i),
        (("__name__", "http_request_duration_seconds_bucket"), ("job", "web"), ("le", "1")):
            lambda i: 100,
        (("__name__", "http_request_duration_seconds_bucket"), ("job", "web"), ("le", "+Inf")):
            lambda i: 100,
        (("__name__", "http_request_duration_seconds_count"), ("job", "web")): lambda i: 100,
    }
    out = {}
    for labels, inc in incs.items():
        values = [0] * (N + 1)
        for i in range(1, N + 1):
            values[i] = values[i - 1] + inc(i)
        out[labels] = values
    return out


# ------------------------------------------------------------- remote write, by hand


def remote_write(url, batch, headers=None):
    body = harness.snappy_block(harness.write_request(
        (labels, [(t, harness.float_bits(v)) for t, v in samples]) for labels, samples in batch))
    h = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
         "X-Prometheus-Remote-Write-Version": "0.1.0"}
    h.update(headers or {})
    status, resp, _ = harness.http("POST", url, body=body, headers=h, timeout=60)
    if status // 100 != 2:
        raise AssertionError("remote write to %s: %s %s" % (url, status, resp[:300]))


def send_month(url, series):
    step = 360  # minutes per request: six hours of every series, in time order
    for lo in range(0, N + 1, step):
        hi = min(lo + step, N + 1)
        batch = [(labels, [(T0 + i * MIN, values[i]) for i in range(lo, hi)])
                 for labels, values in series.items()]
        remote_write(url, batch)


# ------------------------------------------------------- independent computation

WINDOWS = [("5m", 5), ("30m", 30), ("1h", 60), ("2h", 120), ("6h", 360), ("1d", DAY_MIN),
           ("3d", 3 * DAY_MIN)]
ALERTS = [("page-1h", 14.4, 60, 5), ("page-6h", 6, 360, 30), ("ticket-1d", 3, DAY_MIN, 120),
          ("ticket-3d", 1, 3 * DAY_MIN, 360)]


def expected_report(series, bad_fn, objective, end_idx, start_idx):
    """bad_fn(series) -> (bad counter list, total counter list)."""
    bad, total = bad_fn(series)

    def events(lo, hi):
        return bad[hi] - bad[lo], total[hi] - total[lo]

    budget_frac = 1 - objective
    b, t = events(start_idx, end_idx)
    exp = {"total_events": t, "bad_events": b, "sli": 1 - b / t,
           "budget": {"fraction": budget_frac, "events": budget_frac * t,
                      "consumed": b / (budget_frac * t), "remaining": 1 - b / (budget_frac * t),
                      "remaining_events": budget_frac * t - b}}
    burns = {}
    for name, w in WINDOWS:
        wb, wt = events(end_idx - w, end_idx)
        burns[name] = (wb / wt) / budget_frac
    burns["window"] = (b / t) / budget_frac
    exp["burn_rates"] = burns
    by_minutes = {w: burns[n] for n, w in WINDOWS}
    exp["firing"] = sorted(name for name, f, lw, sw in ALERTS
                           if by_minutes[lw] > f and by_minutes[sw] > f)
    remaining_events = exp["budget"]["remaining_events"]
    bad_1h = events(end_idx - 60, end_idx)[0]
    if remaining_events <= 0:
        exp["exhaustion_s"] = 0
    elif bad_1h == 0:
        exp["exhaustion_s"] = None
    else:
        exp["exhaustion_s"] = remaining_events / (bad_1h / 3600)
    # Daily burn-down from the window start; a shorter first day when the window is not whole days.
    span = end_idx - start_idx
    partial = span % DAY_MIN
    ends = ([start_idx + partial] if partial else []) + \
        list(range(start_idx + partial + DAY_MIN, end_idx + 1, DAY_MIN))
    daily = [(T0 + start_idx * MIN, 1.0)]
    for e in ends:
        daily.append((T0 + e * MIN, 1 - (bad[e] - bad[start_idx]) / (budget_frac * t)))
    exp["daily"] = daily
    return exp


def availability(series):
    good = series[(("__name__", "http_requests_total"), ("code", "200"), ("job", "web"))]
    bad = series[(("__name__", "http_requests_total"), ("code", "500"), ("job", "web"))]
    total = [g + b for g, b in zip(good, bad)]
    return [t - g for t, g in zip(total, good)], total


def latency(series):
    fast = series[(("__name__", "http_request_duration_seconds_bucket"), ("job", "web"),
                   ("le", "0.3"))]
    total = series[(("__name__", "http_request_duration_seconds_count"), ("job", "web"))]
    return [t - f for t, f in zip(total, fast)], total


def sloth_errors(series):
    _, total = availability(series)
    bad = series[(("__name__", "http_requests_total"), ("code", "500"), ("job", "web"))]
    return bad, total


# ------------------------------------------------------------------ the SLO files

OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: web-availability
spec:
  service: web
  budgetingMethod: Occurrences
  indicator:
    metadata:
      name: web-good-requests
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total{job="web", code!~"5.."})
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total{job="web"})
  timeWindow:
    - duration: 30d
      isRolling: true
  objectives:
    - displayName: availability
      target: 0.999
---
apiVersion: openslo/v1
kind: SLI
metadata:
  name: web-fast-requests
spec:
  ratioMetric:
    counter: true
    good:
      metricSource:
        type: Prometheus
        spec:
          query: sum(http_request_duration_seconds_bucket{job="web", le="0.3"})
    total:
      metricSource:
        type: Prometheus
        spec:
          query: sum(http_request_duration_seconds_count{job="web"})
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: web-latency
spec:
  service: web
  indicatorRef: web-fast-requests
  timeWindow:
    - duration: 30d
      isRolling: true
  objectives:
    - target: 0.99
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: ghost
spec:
  service: nothing
  indicator:
    metadata:
      name: ghost-requests
    spec:
      ratioMetric:
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: sum(ghost_requests_total{code="500"})
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(ghost_requests_total)
  timeWindow:
    - duration: 30d
      isRolling: true
  objectives:
    - target: 0.99
"""

SLOTH = """\
version: "prometheus/v1"
service: "web"
slos:
  - name: "errors-995"
    objective: 99.5
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="web",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="web"}[{{.window}}]))
  - name: "errors-9995"
    objective: 99.95
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="web",code=~"5.."}[{{ .window }}]))
        total_query: sum(rate(http_requests_total{job="web"}[{{ .window }}]))
"""

EXPECTED_SLOS = {
    "web-availability": (availability, 0.999),
    "web-latency": (latency, 0.99),
    "errors-995": (sloth_errors, 0.995),
    "errors-9995": (sloth_errors, 0.9995),
}

# ------------------------------------------------------------------------- checks


def close(a, b, what, failures, rel=1e-9, abs_tol=1e-9):
    if a is None or b is None:
        if a is not b:
            failures.append("%s: got %r, want %r" % (what, a, b))
        return
    if not math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol):
        failures.append("%s: got %r, want %r" % (what, a, b))


def check_report(label, doc, series, end_idx, start_idx, failures):
    by_name = {s["name"]: s for s in doc["slos"]}
    for name, (fn, objective) in EXPECTED_SLOS.items():
        if name not in by_name:
            failures.append("%s: SLO %s missing from the report" % (label, name))
            continue
        got = by_name[name]
        exp = expected_report(series, fn, objective, end_idx, start_idx)
        w = "%s %s" % (label, name)
        if not got["has_data"]:
            failures.append("%s: reported no data" % w)
            continue
        close(got["objective"], objective, w + " objective", failures)
        close(got["total_events"], exp["total_events"], w + " total_events", failures)
        close(got["bad_events"], exp["bad_events"], w + " bad_events", failures)
        close(got["sli"], exp["sli"], w + " sli", failures)
        for k in ("fraction", "events", "consumed", "remaining", "remaining_events"):
            close(got["error_budget"][k], exp["budget"][k], w + " budget " + k, failures)
        for k, v in exp["burn_rates"].items():
            close(got["burn_rates"].get(k), v, w + " burn " + k, failures)
        firing = sorted(a["name"] for a in got["alerts"] if a["firing"])
        if firing != exp["firing"]:
            failures.append("%s: alerts firing %s, want %s" % (w, firing, exp["firing"]))
        close(got["time_to_exhaustion_seconds"], exp["exhaustion_s"], w + " exhaustion",
              failures, rel=1e-6, abs_tol=1)
        want_status = "exhausted" if exp["budget"]["remaining"] <= 0 else \
            ("burning" if exp["firing"] else "ok")
        if got["status"] != want_status:
            failures.append("%s: status %s, want %s" % (w, got["status"], want_status))
        daily = got["daily_remaining"]
        if len(daily) != len(exp["daily"]):
            failures.append("%s: %d daily points, want %d" % (w, len(daily), len(exp["daily"])))
        else:
            for (t, v), p in zip(exp["daily"], daily):
                want_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t / 1000))
                if p["time"] != want_time:
                    failures.append("%s: daily point at %s, want %s" % (w, p["time"], want_time))
                close(p["remaining"], v, "%s daily %s" % (w, want_time), failures)
    ghost = by_name.get("ghost")
    if ghost is None or ghost["has_data"] or ghost["status"] != "no data" or \
            ghost["sli"] is not None:
        failures.append("%s: the SLO without data is not reported as no data: %s" %
                        (label, json.dumps(ghost)[:300]))


def run_cli(tidemark_bin, args, expect_rc=0):
    proc = subprocess.run([tidemark_bin] + args, capture_output=True, timeout=240)
    if proc.returncode != expect_rc:
        raise AssertionError("tidemark %s: exit %d (want %d)\nstdout: %s\nstderr: %s" %
                             (" ".join(args), proc.returncode, expect_rc,
                              proc.stdout.decode()[-2000:], proc.stderr.decode()[-2000:]))
    return proc.stdout.decode(), proc.stderr.decode()


def report_json(tidemark_bin, source_args, files, at, extra=()):
    docs = {"slos": []}
    for f in files:
        out, _ = run_cli(tidemark_bin, ["slo", "report", "--file", f, "--format", "json",
                                        "--time", str(at // 1000)] + list(source_args) +
                         list(extra))
        docs["slos"] += json.loads(out)["slos"]
    return docs


# ------------------------------------------- --server with tokens and tenants

AUTH_SLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: tenant-errors
spec:
  service: web
  indicator:
    metadata:
      name: tenant-errors
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total{code="500"})
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total)
  timeWindow:
    - duration: 1d
      isRolling: true
  objectives:
    - target: 0.95
"""

# Failures per minute by tenant (of 100 requests a minute): each tenant's figures differ, so a
# report or query that read the wrong tenant cannot pass.
TENANT_ERRORS = {"team-a": 1, "team-b": 10, None: 50}


def tenant_series(errors_per_min):
    return {
        (("__name__", "http_requests_total"), ("code", "200"), ("job", "web")):
            [i * (100 - errors_per_min) for i in range(DAY_MIN + 1)],
        (("__name__", "http_requests_total"), ("code", "500"), ("job", "web")):
            [i * errors_per_min for i in range(DAY_MIN + 1)],
    }


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def check_auth(tidemark_bin, work, failures):
    """A Tidemark with auth tokens (stored as SHA-256 hashes) and three tenants, read through
    --server with --token, --token-file and --tenant, and through --storage.path --tenant."""
    tokens = {"writer": "w-secret-1", "reader": "r-secret-2", "team-a": "a-secret-3"}
    config = os.path.join(work, "auth.yaml")
    with open(config, "w") as f:
        f.write("auth:\n  tokens:\n"
                "    - {name: writer, sha256: %s, role: write, tenants: ['*']}\n"
                "    - {name: reader, sha256: %s, role: read, tenants: ['*']}\n"
                "    - {name: team-a, sha256: %s, role: read, tenants: [team-a]}\n" %
                (sha256_hex(tokens["writer"]), sha256_hex(tokens["reader"]),
                 sha256_hex(tokens["team-a"])))
    # The token files hold a trailing newline, as `echo token > file` writes them.
    token_files = {}
    for name, token in tokens.items():
        token_files[name] = os.path.join(work, "%s.token" % name)
        with open(token_files[name], "w") as f:
            f.write(token + "\n")
    slo_file = os.path.join(work, "auth-slo.yaml")
    with open(slo_file, "w") as f:
        f.write(AUTH_SLO)
    data_dir = os.path.join(work, "auth-data")
    tm = harness.Tidemark(tidemark_bin, data_dir, work,
                          ["--config.file=" + config, "--storage.retention=0",
                           "--storage.fsync=never"]).start()
    try:
        status, _, _ = harness.http("POST", tm.url + "/api/v1/query",
                                    params={"query": "1"}, timeout=10)
        if status != 401:
            failures.append("auth server answers %s without a token, want 401" % status)
        for tenant, errors in TENANT_ERRORS.items():
            series = tenant_series(errors)
            headers = {"Authorization": "Bearer " + tokens["writer"]}
            if tenant:
                headers["X-Scope-OrgID"] = tenant
            remote_write(tm.url + "/api/v1/write",
                         [(labels, [(T0 + i * MIN, v[i]) for i in range(DAY_MIN + 1)])
                          for labels, v in series.items()], headers)
        at = str((T0 + DAY_MIN * MIN) // 1000)

        def errors_seen(args, label):
            out, _ = run_cli(tidemark_bin, ["query", "--format", "json", "--time", at,
                                            'sum(http_requests_total{code="500"})'] + args)
            result = json.loads(out)["data"]["result"]
            if len(result) != 1:
                failures.append("%s: %d series, want 1: %s" % (label, len(result), out[:300]))
                return None
            return float(result[0]["value"][1])

        server = ["--server", tm.url]
        cases = [
            ("--token, --tenant team-a", ["--token", tokens["reader"], "--tenant", "team-a"],
             "team-a"),
            ("--token-file, --tenant team-b",
             ["--token-file", token_files["reader"], "--tenant", "team-b"], "team-b"),
            ("--token, no --tenant", ["--token", tokens["reader"]], None),
            ("team-a's own token", ["--token-file", token_files["team-a"], "--tenant", "team-a"],
             "team-a"),
        ]
        for label, args, tenant in cases:
            got = errors_seen(server + args, "query " + label)
            want = TENANT_ERRORS[tenant] * DAY_MIN
            if got is not None and got != want:
                failures.append("query %s: %s failures, want %s (tenant %s's data)" %
                                (label, got, want, tenant))

        # The SLO report, through the server and through the data directory, per tenant.
        for label, args, tenant in [
                ("--server --token-file --tenant team-a",
                 server + ["--token-file", token_files["team-a"], "--tenant", "team-a"], "team-a"),
                ("--server --token --tenant team-b",
                 server + ["--token", tokens["reader"], "--tenant", "team-b"], "team-b"),
                ("--storage.path --tenant team-b", ["--storage.path", data_dir, "--tenant",
                                                    "team-b"], "team-b")]:
            out, _ = run_cli(tidemark_bin, ["slo", "report", "--file", slo_file, "--format",
                                            "json", "--time", at] + args)
            slo = json.loads(out)["slos"][0]
            bad = TENANT_ERRORS[tenant] * DAY_MIN
            total = 100 * DAY_MIN
            if not slo["has_data"]:
                failures.append("slo report %s: no data" % label)
                continue
            close(slo["bad_events"], bad, "slo report %s bad_events" % label, failures)
            close(slo["total_events"], total, "slo report %s total_events" % label, failures)
            close(slo["sli"], 1 - bad / total, "slo report %s sli" % label, failures)
            close(slo["error_budget"]["consumed"], (bad / total) / 0.05,
                  "slo report %s budget consumed" % label, failures)

        # Refusals surface as clear errors naming the HTTP status and what to change.
        for label, args, needles in [
                ("no token", [], ["HTTP 401", "give --token or --token-file"]),
                ("a wrong token", ["--token", "nope"], ["HTTP 401", "not accepted",
                                                        "--token-file"]),
                ("a wrong token file", ["--token-file", token_files["writer"] + ".missing"],
                 ["cannot read --token-file"]),
                ("team-a's token for team-b",
                 ["--token", tokens["team-a"], "--tenant", "team-b"],
                 ["HTTP 403", 'may not read tenant "team-b"', "--tenant"]),
                ("team-a's token without --tenant", ["--token", tokens["team-a"]],
                 ["HTTP 403", "may not read the default tenant"]),
                ("--token and --token-file", ["--token", "x", "--token-file",
                                              token_files["reader"]], ["not both"])]:
            for command in (["query", "--time", at, "up"],
                            ["slo", "report", "--file", slo_file, "--time", at]):
                _, err = run_cli(tidemark_bin, command + server + args, expect_rc=1)
                missing = [n for n in needles if n not in err]
                if missing or "Traceback" in err or len(err.strip().splitlines()) != 1:
                    failures.append("%s with %s: error %r lacks %s" %
                                    (command[0], label, err, missing))
    finally:
        tm.close()


def check_rules_with_promtool(tidemark_bin, prometheus_bin, files, work, failures):
    """`slo rules` must give rule files that Prometheus's own checker accepts: 8 recording rules
    (7 burn-rate windows and the SLO window) and 2 alerts (page, ticket) per SLO."""
    promtool = os.path.join(os.path.dirname(os.path.realpath(prometheus_bin)), "promtool")
    if not os.path.exists(promtool):
        promtool = shutil.which("promtool")
    if not promtool:
        failures.append("promtool not found (Debian's prometheus package ships it)")
        return
    for path, slos in files:
        out, _ = run_cli(tidemark_bin, ["slo", "rules", "--file", path])
        rules = os.path.join(work, os.path.basename(path) + ".rules.yml")
        with open(rules, "w") as f:
            f.write(out)
        proc = subprocess.run([promtool, "check", "rules", rules], capture_output=True,
                              timeout=60)
        text = (proc.stdout + proc.stderr).decode(errors="replace")
        if proc.returncode != 0 or ("SUCCESS: %d rules found" % (10 * slos)) not in text:
            failures.append("promtool check rules %s (exit %d): %s" %
                            (rules, proc.returncode, text[-1500:]))


def main():
    tidemark_bin, prometheus_bin = sys.argv[1], sys.argv[2]
    work = harness.temp_dir("tidemark-slo-")
    failures = []
    tm = prom = None
    ok = False
    try:
        series = build_series()
        openslo = os.path.join(work, "slos.yaml")
        sloth = os.path.join(work, "sloth.yaml")
        with open(openslo, "w") as f:
            f.write(OPENSLO)
        with open(sloth, "w") as f:
            f.write(SLOTH)

        data_dir = os.path.join(work, "tidemark-data")
        tm = harness.Tidemark(tidemark_bin, data_dir, work,
                              ["--storage.retention=0", "--storage.fsync=never"]).start()
        send_month(tm.url + "/api/v1/write", series)

        prom = harness.Prometheus(prometheus_bin, work, ["--storage.tsdb.retention.time=3650d",
                                                         "--web.enable-remote-write-receiver"])
        prom.start("global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 60d\n")
        prom_url = prom.url
        send_month(prom_url + "/api/v1/write", series)

        files = [openslo, sloth]
        # 1. Tidemark over HTTP.
        doc = report_json(tidemark_bin, ["--server", tm.url], files, END)
        check_report("tidemark --server", doc, series, N, 0, failures)

        # 2. The data directory, read-only, while the server keeps receiving writes.
        stop = threading.Event()
        writer_errors = []

        def keep_writing():
            k = 0
            while not stop.is_set():
                try:
                    remote_write(tm.url + "/api/v1/write",
                                 [((("__name__", "live_writes_total"), ("job", "writer")),
                                   [(END + (k + 1) * 1000, k)])])
                except Exception as e:  # noqa: BLE001 - reported below
                    writer_errors.append(str(e))
                    return
                k += 1
                time.sleep(0.01)

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            doc = report_json(tidemark_bin, ["--storage.path", data_dir], files, END)
            check_report("tidemark --storage.path", doc, series, N, 0, failures)
            out, _ = run_cli(tidemark_bin, ["query", "--storage.path", data_dir, "--format", "csv",
                                            "--time", str(END // 1000),
                                            "sum by (code) (http_requests_total)"])
        finally:
            stop.set()
            writer.join(timeout=30)
        if writer_errors:
            failures.append("writes failed while the CLI read the directory: %s" % writer_errors[0])
        rows = sorted(out.strip().splitlines()[1:])
        good, bad = availability(series)[1][N] - availability(series)[0][N], \
            availability(series)[0][N]
        want_rows = sorted(["200,%d,%d" % (END // 1000, good), "500,%d,%d" % (END // 1000, bad)])
        # columns: __name__ (empty after sum), code, timestamp, value
        got_rows = sorted(r.split(",", 1)[1] for r in rows)
        if got_rows != want_rows:
            failures.append("query --storage.path csv: %s, want %s" % (got_rows, want_rows))

        # 3. Real Prometheus holding the same samples gives the same figures.
        doc = report_json(tidemark_bin, ["--server", prom_url], files, END)
        check_report("prometheus --server", doc, series, N, 0, failures)

        # 4. Calendar month: the month so far at MID.
        mid_idx = (MID - T0) // MIN
        doc = report_json(tidemark_bin, ["--server", tm.url], files, MID, ["--calendar"])
        check_report("tidemark --calendar", doc, series, mid_idx, 0, failures)
        for s in doc["slos"]:
            if not s["window"]["calendar"] or s["window"]["start"] != "2024-03-01T00:00:00Z":
                failures.append("calendar window of %s: %s" % (s["name"], s["window"]))

        # 5. Table, Markdown, SVG chart, --fail-on-exhausted.
        chart = os.path.join(work, "burn.svg")
        table, _ = run_cli(tidemark_bin, ["slo", "report", "--file", openslo, "--server", tm.url,
                                          "--time", str(END // 1000), "--chart", chart])
        for needle in ("web-availability", "web-latency", "NO DATA", "budget by day", "▁"):
            if needle not in table:
                failures.append("table output lacks %r:\n%s" % (needle, table))
        md, _ = run_cli(tidemark_bin, ["slo", "report", "--file", sloth, "--server", tm.url,
                                       "--time", str(END // 1000), "--format", "markdown"])
        if not md.startswith("| SLO |") or "| errors-9995 |" not in md or "exhausted" not in md:
            failures.append("markdown output:\n" + md)
        root = ET.parse(chart).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        groups = [g for g in root.iter(ns + "g") if g.get("class") == "slo"]
        names = [g.get("data-slo") for g in groups]
        if names != ["web-availability", "web-latency", "ghost"]:
            failures.append("svg panels %s" % names)
        for g in groups:
            lines = [e for e in g.iter(ns + "polyline") if e.get("class") == "remaining"]
            objective = [e for e in g.iter(ns + "line") if e.get("class") == "objective"]
            if not objective:
                failures.append("svg panel %s has no objective line" % g.get("data-slo"))
            if g.get("data-slo") == "ghost":
                if lines or not [e for e in g.iter(ns + "text") if e.get("class") == "nodata"]:
                    failures.append("svg panel ghost should say no data")
            elif len(lines) != 1 or len(lines[0].get("points").split()) != 121:
                failures.append("svg panel %s: remaining series %s" %
                                (g.get("data-slo"), [len(e.get("points").split()) for e in lines]))
        shutil.copy(chart, os.path.join(os.environ.get("TIDEMARK_SLO_CHART_DIR", work),
                                        "slo-burn.svg"))
        run_cli(tidemark_bin, ["slo", "report", "--file", sloth, "--server", tm.url,
                               "--time", str(END // 1000), "--fail-on-exhausted"], expect_rc=3)

        # 6. Clear errors.
        bad_file = os.path.join(work, "bad.yaml")
        with open(bad_file, "w") as f:
            f.write(OPENSLO.replace("target: 0.999", "target: high"))
        _, err = run_cli(tidemark_bin, ["slo", "report", "--file", bad_file, "--server", tm.url],
                         expect_rc=1)
        line = OPENSLO.splitlines().index("      target: 0.999") + 1
        if ("bad.yaml:%d:" % line) not in err or "spec.objectives[0].target" not in err:
            failures.append("bad SLO file error lacks line %d and field: %s" % (line, err))
        _, err = run_cli(tidemark_bin, ["slo", "report", "--file", openslo, "--server",
                                        "http://127.0.0.1:%d" % harness.free_port()], expect_rc=1)
        if "cannot reach" not in err:
            failures.append("unreachable server error: %s" % err)

        # 7. --server with --token / --token-file / --tenant against a server with auth on.
        check_auth(tidemark_bin, work, failures)

        # 8. `slo rules` is a valid Prometheus rule file.
        check_rules_with_promtool(tidemark_bin, prometheus_bin, [(openslo, 3), (sloth, 2)],
                                  work, failures)

        # 9. labels / label-values / series through both sources.
        for src in (["--server", tm.url], ["--storage.path", data_dir]):
            out, _ = run_cli(tidemark_bin, ["label-values", "code"] + src)
            if out.split() != ["200", "500"]:
                failures.append("label-values code %s: %r" % (src[0], out))
            out, _ = run_cli(tidemark_bin, ["labels", "--format", "json"] + src)
            if not {"__name__", "code", "job", "le"} <= set(json.loads(out)["data"]):
                failures.append("labels %s: %r" % (src[0], out))
            out, _ = run_cli(tidemark_bin, ["series", "http_request_duration_seconds_bucket"] + src)
            if len(out.strip().splitlines()) != 4 or 'le="+Inf"' not in out:
                failures.append("series %s: %r" % (src[0], out))
        ok = not failures
    finally:
        for p in (tm, prom):
            if p is not None:
                p.close()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAILED (%d):\n  %s\nwork dir kept: %s" % (len(failures), "\n  ".join(failures[:60]),
                                                          work))
        return 1
    print("slo e2e: all figures agree (tidemark --server, --storage.path, prometheus)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
