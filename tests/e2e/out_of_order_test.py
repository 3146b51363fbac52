#!/usr/bin/env python3
"""The out-of-order window against Prometheus 2.42 (out_of_order_time_window) holding the same
samples: late samples sent by remote write are accepted by both within the window, refused by
both beyond it, and the raw samples and a few queries agree, also after Tidemark is killed with
SIGKILL and restarted.

usage: out_of_order_test.py TIDEMARK_BINARY PROMETHEUS_BINARY
"""
import json
import os
import random
import shutil
import sys

import harness

T0_MS = 1_700_000_000_000
STEP_MS = 15_000
STEPS = 240  # one hour
SERIES = 12
WINDOW = "30m"


def write(url, batch):
    body = harness.write_request((sorted(l.items()), s) for l, s in batch if s)
    status, resp, _ = harness.http(
        "POST", url + "/api/v1/write", body=harness.snappy_block(body),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                 "X-Prometheus-Remote-Write-Version": "0.1.0"}, timeout=60)
    return status, resp.decode(errors="replace")


def both(prom_url, tidemark_url, batch, what):
    statuses = [write(url, batch) for url in (prom_url, tidemark_url)]
    assert statuses[0][0] == 204 and statuses[1][0] == 204, "%s: Prometheus %s, Tidemark %s" % (
        what, statuses[0], statuses[1])


def answers(url, t_end):
    """Raw samples of every series, and two aggregations, as comparable values."""
    out = {}
    for expr in ("m[2h]", "count_over_time(m[2h])", "sum(rate(m[5m]))"):
        status, body = harness.get_json(url + "/api/v1/query", {"query": expr, "time": t_end})
        assert status == 200, (url, expr, body)
        result = body["data"]["result"]
        out[expr] = sorted(json.dumps(r, sort_keys=True) for r in result)
    return out


def main():
    tidemark_bin, prometheus_bin = sys.argv[1], sys.argv[2]
    work = harness.temp_dir("tidemark-ooo-")
    server = harness.Tidemark(tidemark_bin, os.path.join(work, "data"), work,
                              extra_args=["--storage.retention=0",
                                          "--storage.out-of-order-window=" + WINDOW])
    prom = harness.Prometheus(prometheus_bin, work, ["--storage.tsdb.retention.time=100y",
                                                     "--web.enable-remote-write-receiver"])
    prom_url = prom.url
    succeeded = False
    try:
        server.start()
        prom.start("global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n"
                   "    out_of_order_time_window: %s\n" % WINDOW)

        rnd = random.Random(7)
        labels = [{"__name__": "m", "job": "ooo", "instance": "i%d" % i} for i in range(SERIES)]
        # Every series every other step, in order: the odd steps are left for late samples.
        values = {}
        for step in range(0, STEPS, 2):
            batch = []
            for i, l in enumerate(labels):
                v = float(step * 10 + i) + round(rnd.random(), 2)
                values[(i, step)] = v
                batch.append((l, [(T0_MS + step * STEP_MS, harness.float_bits(v))]))
            both(prom_url, server.url, batch, "in-order step %d" % step)
        newest = T0_MS + (STEPS - 2) * STEP_MS

        # Late: odd steps of the last 25 minutes (inside the 30m window), sent newest first,
        # several per request and out of order within it, plus resends of stored samples.
        late_steps = [s for s in range(STEPS - 3, 0, -2)
                      if newest - (T0_MS + s * STEP_MS) < 25 * 60_000]
        for k in range(0, len(late_steps), 5):
            batch = []
            for i, l in enumerate(labels):
                samples = []
                for step in late_steps[k:k + 5]:
                    v = float(step * 10 + i) + 0.5
                    samples.append((T0_MS + step * STEP_MS, harness.float_bits(v)))
                rnd.shuffle(samples)
                batch.append((l, samples))
            both(prom_url, server.url, batch, "late steps %s" % late_steps[k:k + 5])
        resend = [(l, [(T0_MS + (STEPS - 40) * STEP_MS,
                        harness.float_bits(values[(i, STEPS - 40)]))]) for i, l in enumerate(labels)]
        both(prom_url, server.url, resend, "resent samples")

        # Beyond the window: refused by both (Prometheus 2.42 answers 500 for "too old sample",
        # Tidemark 400 "out of order sample"), and nothing of the request is stored.
        too_old = [(l, [(newest - 40 * 60_000 + 7_000, harness.float_bits(1.0))]) for l in labels]
        p_status, p_body = write(prom_url, too_old)
        t_status, t_body = write(server.url, too_old)
        assert p_status >= 400 and t_status == 400 and "out of order" in t_body, (
            "too old: Prometheus %s %s; Tidemark %s %s" % (p_status, p_body, t_status, t_body))

        t_end = (newest + 60_000) / 1000
        want = answers(prom_url, t_end)
        n_raw = sum(len(json.loads(r)["values"]) for r in want["m[2h]"])
        expected = SERIES * (STEPS // 2 + len(late_steps))
        assert n_raw == expected, "Prometheus holds %d samples, expected %d" % (n_raw, expected)
        got = answers(server.url, t_end)
        for expr in want:
            assert got[expr] == want[expr], "%s differs:\nPrometheus %s\nTidemark   %s" % (
                expr, want[expr][:2], got[expr][:2])
        print("%d late samples accepted by both; %d raw samples agree" % (
            SERIES * len(late_steps), n_raw))

        # The late samples survive a crash.
        server.process.kill9()
        server.start()
        got = answers(server.url, t_end)
        for expr in want:
            assert got[expr] == want[expr], "after SIGKILL, %s differs" % expr
        print("after SIGKILL and restart: the same")
        succeeded = True
    finally:
        prom.close()
        server.close()
    if succeeded:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
