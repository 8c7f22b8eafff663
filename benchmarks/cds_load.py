"""Load run against the CDS Hooks service: N hook calls from C concurrent keep-alive clients.

Run: python benchmarks/cds_load.py [--requests 400] [--concurrency 8] [--url http://127.0.0.1:PORT]
Without --url it starts `guideline serve --dev-no-auth --port 0` in a subprocess (optionally with
--audit-log) and stops it afterwards. Targets are loopback only: this is a bounded local load run,
not a tool for other hosts. Prints requests/s and latency percentiles; tests/test_cds.py runs the
same `run_load` against a server with JWT authentication and an audit log.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cds" / "patient-view-febrile-neutropenia-high-risk.json"
_RUNNING = re.compile(r"Uvicorn running on http://([^:\s]+):(\d+)")


@dataclass
class Stats:
    seconds: float
    latencies: list[float] = field(default_factory=list)   # seconds, one per completed request
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in ms (nearest rank)."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    def line(self) -> str:
        codes = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{len(self.latencies)} requests in {self.seconds:.2f} s: {self.rps:.0f} requests/s; latency "
                f"p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms, "
                f"max {1000 * max(self.latencies):.1f} ms, mean {1000 * statistics.fmean(self.latencies):.1f} ms "
                f"(status {codes})")


def run_load(host: str, port: int, path: str, body: bytes, *, requests: int = 400, concurrency: int = 8,
             headers: Callable[[int], dict[str, str]] | None = None, timeout: float = 30.0) -> Stats:
    """POST `body` to `path` `requests` times from `concurrency` threads, each on one keep-alive connection."""
    if not ipaddress.ip_address("127.0.0.1" if host == "localhost" else host).is_loopback:
        raise ValueError(f"load runs target loopback addresses only, not {host}")
    counter = itertools.count()
    lock = threading.Lock()
    stats = Stats(0.0)

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            while (i := next(counter)) < requests:
                extra = headers(i) if headers else {}
                start = time.perf_counter()
                conn.request("POST", path, body, {"Content-Type": "application/json", **extra})
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - start
                with lock:
                    stats.latencies.append(elapsed)
                    stats.statuses[response.status] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats.seconds = time.perf_counter() - began
    return stats


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path

    def stop(self) -> str:
        """Stop the server (SIGTERM, then kill) and return what it logged."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_server(args: Sequence[str], log: Path, wait: float = 30.0) -> ServerProcess:
    """`guideline serve ARGS --port 0` in a subprocess; returns once it listens (its log goes to `log`)."""
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen([sys.executable, "-m", "engine", "serve", *args, "--port", "0"],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        match = _RUNNING.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            return ServerProcess(process, match[1], int(match[2]), log)
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the server did not start within {wait} s:\n{log.read_text()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--url", help="a running service started with --dev-no-auth (loopback only)")
    parser.add_argument("--example", type=Path, default=EXAMPLE, help="the hook request to send")
    parser.add_argument("--audit-log", help="without --url: start the server with this audit log")
    args = parser.parse_args(argv)
    request = json.loads(args.example.read_text(encoding="utf-8"))
    body = json.dumps(request).encode("utf-8")
    path = f"/cds-services/neutropenia-{request['hook']}"
    server = None
    if args.url:
        parts = urlsplit(args.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
    else:
        log = Path(tempfile.mkstemp(prefix="cds-load-", suffix=".log")[1])
        server = start_server(["--dev-no-auth", *(["--audit-log", args.audit_log] if args.audit_log else [])], log)
        host, port = server.host, server.port
    try:
        run_load(host, port, path, body, requests=min(20, args.requests), concurrency=1)  # warm-up
        stats = run_load(host, port, path, body, requests=args.requests, concurrency=args.concurrency)
    finally:
        if server is not None:
            server.stop()
            os.unlink(server.log)
    print(f"{args.example.name} -> {path}, {args.concurrency} concurrent clients, {os.cpu_count()} CPU(s)")
    print(stats.line())
    return 0 if set(stats.statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
