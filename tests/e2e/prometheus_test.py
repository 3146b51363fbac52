"""End-to-end test against real Prometheus 2.42: Prometheus scrapes itself every second and
remote-writes to Tidemark; then the same PromQL queries go to both and the answers must agree.

usage: prometheus_test.py TIDEMARK_BINARY PROMETHEUS_BINARY
"""

import math
import os
import shutil
import sys
import time

import harness

WARMUP_SECONDS = 35

INSTANT_QUERIES = [
    "up",
    "prometheus_http_requests_total",
    "rate(prometheus_http_requests_total[1m])",
    "sum by (handler) (rate(prometheus_http_requests_total[1m]))",
    "sum without (instance) (rate(prometheus_http_requests_total[30s]))",
    "irate(prometheus_http_requests_total[1m])",
    "increase(prometheus_http_requests_total[30s])",
    "delta(prometheus_tsdb_head_series[1m])",
    "count by (job) (up)",
    "max by (code) (prometheus_http_requests_total)",
    "min(prometheus_http_requests_total)",
    "avg(rate(prometheus_http_requests_total[1m]))",
    "prometheus_http_requests_total * 2 + 1",
    "prometheus_http_requests_total > 5",
    "prometheus_http_requests_total > bool 5",
    "rate(prometheus_http_requests_total[1m]) / on (handler, code, instance, job) "
    "prometheus_http_requests_total",
    "prometheus_http_requests_total offset 10s",
    "sum(up) - 1",
    "-up",
    "1 + 1",
]

RANGE_QUERIES = [
    "rate(prometheus_http_requests_total[1m])",
    "sum by (handler) (rate(prometheus_http_requests_total[1m]))",
    "up",
]


def values_equal(a, b):
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    if fa == fb:
        return True
    return abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb))


def normalise(data):
    """(resultType, {labels: [(t, v), ...]}) from an API `data` object."""
    rtype = data["resultType"]
    result = data["result"]
    if rtype in ("scalar", "string"):
        return rtype, {(): [tuple(result)]}
    out = {}
    for series in result:
        key = tuple(sorted(series["metric"].items()))
        out[key] = [tuple(series["value"])] if rtype == "vector" else \
            [tuple(p) for p in series["values"]]
    return rtype, out


def compare(name, ref, got):
    """Returns a list of differences (empty when equal)."""
    if ref[0] != got[0]:
        return ["%s: result type %s vs %s" % (name, ref[0], got[0])]
    diffs = []
    if set(ref[1]) != set(got[1]):
        diffs.append("%s: label sets differ: only in Prometheus %s; only in Tidemark %s" %
                     (name, sorted(set(ref[1]) - set(got[1]))[:3],
                      sorted(set(got[1]) - set(ref[1]))[:3]))
    for key in set(ref[1]) & set(got[1]):
        rp, gp = ref[1][key], got[1][key]
        if len(rp) != len(gp):
            diffs.append("%s %s: %d points vs %d" % (name, key, len(rp), len(gp)))
            continue
        for (rt, rv), (gt, gv) in zip(rp, gp):
            if abs(float(rt) - float(gt)) > 1e-6 or not values_equal(rv, gv):
                diffs.append("%s %s: (%s, %s) vs (%s, %s)" % (name, key, rt, rv, gt, gv))
                break
    return diffs


def main():
    tidemark_bin, prometheus_bin = sys.argv[1], sys.argv[2]
    work = harness.temp_dir("tidemark-e2e-")
    server = harness.Tidemark(tidemark_bin, os.path.join(work, "data"), work)
    prom = harness.Prometheus(prometheus_bin, work)
    prom_url = prom.url
    ok = False
    try:
        server.start()
        prom.start("""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:%d']
remote_write:
  - url: %s/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      max_shards: 2
""" % (prom.port, server.url))
        time.sleep(WARMUP_SECONDS)
        server.alive_or_raise()

        t = float(int(time.time()) - 8)
        diffs = []
        checked = 0
        for q in INSTANT_QUERIES:
            ps, pb = harness.get_json(prom_url + "/api/v1/query", {"query": q, "time": t})
            ts, tb = server.query(q, t)
            if ps != ts:
                diffs.append("%s: status %s vs %s (%s)" % (q, ps, ts, tb))
                continue
            if ps != 200:
                diffs.append("%s: Prometheus failed: %s" % (q, pb))
                continue
            ref = normalise(pb["data"])
            if ref[0] in ("vector", "matrix") and not ref[1]:
                diffs.append("%s: Prometheus returned no data; the test proves nothing" % q)
            diffs += compare(q, ref, normalise(tb["data"]))
            checked += 1
        for q in RANGE_QUERIES:
            params = {"query": q, "start": t - 20, "end": t, "step": "5s"}
            ps, pb = harness.get_json(prom_url + "/api/v1/query_range", params)
            ts, tb = harness.get_json(server.url + "/api/v1/query_range", params)
            if ps != 200 or ts != 200:
                diffs.append("%s range: status %s vs %s (%s)" % (q, ps, ts, tb))
                continue
            diffs += compare(q + " (range)", normalise(pb["data"]), normalise(tb["data"]))
            checked += 1

        # Prometheus's own account of the remote write: nothing failed, something was sent.
        _, sent = harness.get_json(prom_url + "/api/v1/query",
                                   {"query": "sum(prometheus_remote_storage_samples_total)"})
        _, failed = harness.get_json(
            prom_url + "/api/v1/query",
            {"query": "sum(prometheus_remote_storage_samples_failed_total)"})
        sent_n = float(sent["data"]["result"][0]["value"][1])
        failed_n = float(failed["data"]["result"][0]["value"][1])
        print("remote write: %d samples sent, %d failed" % (sent_n, failed_n))
        if sent_n <= 0:
            diffs.append("Prometheus sent no samples")
        if failed_n != 0:
            diffs.append("Prometheus reports %d failed remote-write samples" % failed_n)

        for d in diffs:
            print("DIFF", d)
        print("%d queries compared, %d differences" % (checked, len(diffs)))
        assert not diffs, "Tidemark and Prometheus disagree"
        ok = True
    finally:
        prom.close()
        server.close()
        if ok:  # kept for its logs otherwise
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
