"""Process and HTTP helpers for Tidemark's end-to-end tests.

Everything runs on loopback, in temporary directories, started and stopped by the test itself.
Standard library only, so the tests need nothing beyond python3.
"""

import json
import os
import signal
import struct
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, params=None, body=None, headers=None, timeout=30):
    """Returns (status, body bytes, headers). Never raises for HTTP error codes."""
    if params:
        url = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params, doseq=True)
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def get_json(url, params=None, headers=None):
    status, body, _ = http("GET", url, params=params, headers=headers)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"raw": body.decode(errors="replace")}


def wait_until(predicate, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class Process:
    """A child process with its output in a log file, killed at the latest when the test ends."""

    def __init__(self, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout=60):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError("%s did not stop within %ss of SIGTERM" % (self.argv[0], timeout))
        return self.proc.returncode

    def tail(self, n=40):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")

    def close(self):
        if self.alive():
            self.kill9()
        self.log.close()


class Tidemark:
    """`tidemark serve` on a data directory and a free loopback port."""

    def __init__(self, binary, data_dir, log_dir, extra_args=()):
        self.binary = binary
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.process = None
        self.starts = 0

    def start(self, ready_timeout=60):
        self.starts += 1
        argv = [self.binary, "serve", "--storage.path=" + self.data_dir,
                "--web.listen-address=127.0.0.1:%d" % self.port] + self.extra_args
        self.process = Process(argv, os.path.join(self.log_dir, "tidemark-%d.log" % self.starts))
        try:
            wait_until(lambda: self.alive_or_raise() and
                       http("GET", self.url + "/-/ready", timeout=2)[0] == 200,
                       ready_timeout, "tidemark to be ready")
        except AssertionError:
            raise AssertionError("tidemark did not become ready:\n" + self.process.tail())
        return self

    def alive_or_raise(self):
        if not self.process.alive():
            raise AssertionError("tidemark exited with %s:\n%s" %
                                 (self.process.proc.returncode, self.process.tail()))
        return True

    def query(self, expr, t, headers=None):
        return get_json(self.url + "/api/v1/query", {"query": expr, "time": t}, headers)

    def close(self):
        if self.process:
            self.process.close()


class Prometheus:
    """A real Prometheus on a free loopback port, with its config and data under `work_dir`.
    The port is known before start(), so a config can name it (to scrape itself)."""

    def __init__(self, binary, work_dir, extra_args=()):
        self.binary = binary
        self.work_dir = work_dir
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.process = None

    def start(self, config_text, ready_timeout=60):
        config = os.path.join(self.work_dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(config_text)
        self.process = Process(
            [self.binary, "--config.file=" + config,
             "--storage.tsdb.path=" + os.path.join(self.work_dir, "prometheus-data"),
             "--web.listen-address=127.0.0.1:%d" % self.port] + self.extra_args,
            os.path.join(self.work_dir, "prometheus.log"))
        wait_until(lambda: http("GET", self.url + "/-/ready", timeout=2)[0] == 200,
                   ready_timeout, "prometheus to be ready")
        return self

    def close(self):
        if self.process:
            self.process.close()


# --- remote write 1.0 bodies, by hand: no protobuf or snappy package needed --------------------

def uvarint(n):
    """Protobuf base-128 varint of a non-negative integer (mask negatives to 64 bits first)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes_field(number, payload):
    """A length-delimited protobuf field."""
    return uvarint((number << 3) | 2) + uvarint(len(payload)) + payload


def float_bits(v):
    """The IEEE-754 bits of a float, as remote write carries it (so NaN payloads survive)."""
    return struct.unpack("<Q", struct.pack("<d", float(v)))[0]


def write_request(series):
    """prompb.WriteRequest from [(label pairs sorted by name, [(t_ms, float bits), ...]), ...]:
    TimeSeries (1) of Label (1: name 1, value 2) and Sample (2: double value 1, int64 ts 2)."""
    out = bytearray()
    for labels, samples in series:
        ts = bytearray()
        for name, value in labels:
            ts += pb_bytes_field(1, pb_bytes_field(1, name.encode()) +
                                 pb_bytes_field(2, value.encode()))
        for t, bits in samples:
            ts += pb_bytes_field(2, b"\x09" + struct.pack("<Q", bits) + b"\x10" +
                                 uvarint(t & 0xFFFFFFFFFFFFFFFF))
        out += pb_bytes_field(1, bytes(ts))
    return bytes(out)


def snappy_block(data):
    """A valid snappy block of literal elements only (uncompressed), as remote write accepts."""
    out = bytearray(uvarint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
    return bytes(out)


def temp_dir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
