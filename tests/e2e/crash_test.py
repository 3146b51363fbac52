"""Crash test: SIGKILL `tidemark serve` during remote-write ingest, restart it, and check that
every sample acknowledged with 2xx before the kill is there, bit for bit. The server runs its
maintenance pass every 200 ms with a tiny head-checkpoint threshold, so kills land before,
during and after head checkpoints, seals and WAL releases.

usage: crash_test.py TIDEMARK_BINARY RW_SENDER_BINARY
"""

import os
import random
import shutil
import subprocess
import sys
import time

import harness

SERIES = 50
INTERVAL_MS = 1000
ROUNDS = 3


def read_acked(path):
    with open(path) as f:
        return [int(line) for line in f if line.strip()]


def expected_value(series, step):
    # Exactly representable and printed without exponent, so the JSON strings compare exactly.
    return float(series * 1_000_000 + step)


def main():
    tidemark_bin, sender_bin = sys.argv[1], sys.argv[2]
    work = harness.temp_dir("tidemark-crash-")
    server = harness.Tidemark(tidemark_bin, os.path.join(work, "data"), work,
                              extra_args=["--storage.maintenance-interval=200ms",
                                          "--storage.checkpoint-wal-size=4KiB"])
    start_ms = (int(time.time()) - 3000) * 1000  # within retention, an hour of room
    rng = random.Random(42)
    next_step = 0
    last_acked = -1
    ok = False
    try:
        for round_no in range(ROUNDS):
            server.start()
            acked_path = os.path.join(work, "acked-%d.txt" % round_no)
            sender = subprocess.Popen(
                [sender_bin, "--url=" + server.url + "/api/v1/write", "--series=%d" % SERIES,
                 "--start-ms=%d" % start_ms, "--interval-ms=%d" % INTERVAL_MS,
                 "--first-step=%d" % next_step, "--steps=2000", "--acked=" + acked_path],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            harness.wait_until(lambda: os.path.exists(acked_path) and
                               len(read_acked(acked_path)) >= 20, 60, "20 acknowledged requests")
            time.sleep(rng.uniform(0.05, 0.5))
            server.process.kill9()
            out, _ = sender.communicate(timeout=60)
            acked = read_acked(acked_path)
            assert acked == list(range(next_step, next_step + len(acked))), "acks out of order"
            last_acked = acked[-1]
            print("round %d: %d requests acknowledged before SIGKILL; sender said: %s" %
                  (round_no, len(acked), out.decode(errors="replace").strip()[-200:]))
            next_step = last_acked + 1

        # The last kill left a head checkpoint: the restart below reads it.
        checkpoint = os.path.join(work, "data", "HEAD-CHECKPOINT")
        assert os.path.exists(checkpoint), "no head checkpoint was written"
        server.start()
        eval_s = (start_ms + 3_500_000) / 1000.0  # the [1h] range covers every step sent
        status, body = server.query('crash_metric[1h]', eval_s)
        assert status == 200, (status, body)
        result = body["data"]["result"]
        assert len(result) == SERIES, "expected %d series, got %d" % (SERIES, len(result))
        missing = 0
        for series in result:
            idx = int(series["metric"]["series"])
            got = {round((float(t) * 1000 - start_ms) / INTERVAL_MS): float(v)
                   for t, v in series["values"]}
            for step in range(0, last_acked + 1):
                if got.get(step) != expected_value(idx, step):
                    missing += 1
            for step, v in got.items():
                # Samples of a request in flight at the kill may be there; never wrong ones.
                assert v == expected_value(idx, step), (idx, step, v)
        assert missing == 0, "%d acknowledged samples missing or wrong after SIGKILL" % missing
        print("crash test: %d series x %d steps acknowledged, all present after %d kills" %
              (SERIES, last_acked + 1, ROUNDS))
        assert server.process.terminate() == 0, "graceful shutdown should exit 0"
        assert not os.path.exists(checkpoint), "a clean shutdown leaves no head checkpoint"
        ok = True
    finally:
        server.close()
        if ok:  # kept for its logs otherwise
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
