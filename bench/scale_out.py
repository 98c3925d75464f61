"""Benchmark: messages end to end through 1, 2 and 4 `socialbot serve` workers on PostgreSQL, and through the
embedded SQLite default with one worker.

For each set-up it starts a real server (`socialbot serve --workers N` on a free port; PostgreSQL is a
throw-away cluster made with `initdb` + `pg_ctl`, as in the tests), waits until every worker is ready, then
posts a fixed number of web chat messages from several concurrent clients. The web chat API answers with the
reply in the response, so a request's latency is "message in -> reply out" end to end. It prints messages per
second, p50 / p99 latency, and where the time went, from the workers' own /metrics: the models
(`socialbot_model_seconds`), the rest of the pipeline's database work (`socialbot_pipeline_seconds` minus the
model) and everything else (web layer, storing the message, delivering the reply). Run from the repository:

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python bench/scale_out.py [--messages 400] [--clients 8]

It is a measurement, not a test. On a shared 2-core machine more workers than cores mostly add contention.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402

METRICS_TOKEN = "bench-metrics-token"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
TEXTS = [
    "how long does delivery take?",
    "love my new tent, thank you!",
    "my boots fell apart after a week and nobody answers",
    "you should sell kids' hiking boots",
]


class ServerDidNotStart(Exception):
    """The workers exited or did not become ready in time."""


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of `name` (all label sets) in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match:
            total += float(match.group(2))
    return total


def run_setup(label: str, workers: int, database_url: str | None, messages: int, clients: int) -> dict:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="socialbot-bench-"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "SOCIALBOT_DATA__DIR": str(data_dir),
        "SOCIALBOT_LOGGING__LEVEL": "WARNING",
        "SOCIALBOT_KNOWLEDGE__REFRESH_SECONDS": "0",
        "SOCIALBOT_WEBCHAT__MESSAGES_PER_MINUTE_PER_IP": "0",  # every message comes from this one machine
        "SOCIALBOT_SERVER__METRICS_TOKEN": METRICS_TOKEN,
    }
    if database_url:
        env["SOCIALBOT_DATABASE__URL"] = database_url
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--workers", str(workers), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        in_a_row = 0
        while in_a_row < 3 * workers:
            if server.poll() is not None or time.monotonic() > deadline:
                raise ServerDidNotStart(f"{label}: the server did not start (exit code {server.poll()})")
            try:
                in_a_row = in_a_row + 1 if httpx.get(f"{base}/readyz", timeout=5).status_code == 200 else 0
            except httpx.HTTPError:
                in_a_row = 0
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=120) as http:
            for n in range(clients):  # warm-up: first requests of each worker load lazily
                http.post("/api/v1/chat", json={"session_id": f"warmup-{n:04d}", "text": TEXTS[0]})
            before = http.get("/metrics", headers=SCRAPER).text

            def send(number: int) -> float:
                started = time.perf_counter()
                response = http.post(
                    "/api/v1/chat",
                    json={"session_id": f"bench-{number:06d}", "text": TEXTS[number % len(TEXTS)]},
                )
                response.raise_for_status()
                return time.perf_counter() - started

            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                latencies = sorted(pool.map(send, range(messages)))
            elapsed = time.perf_counter() - started
            after = http.get("/metrics", headers=SCRAPER).text
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    sums = {
        kind: metric_sum(after, f"socialbot_{kind}_seconds_sum")
        - metric_sum(before, f"socialbot_{kind}_seconds_sum")
        for kind in ("model", "pipeline")
    }
    model, pipeline = sums["model"], sums["pipeline"]
    total = sum(latencies)
    return {
        "label": label,
        "rate": messages / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "model": model / total,
        "database": (pipeline - model) / total,
        "other": 1 - pipeline / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", default="1,2,4", help="PostgreSQL worker counts, comma-separated")
    args = parser.parse_args()
    setups: list[tuple[str, int, str | None]] = [("SQLite, 1 worker", 1, None)]
    postgres = PostgresServer()
    postgres.start()
    results = []
    try:
        for workers in [int(n) for n in args.workers.split(",")]:
            setups.append(
                (f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}", workers, postgres.database())
            )
        for label, workers, url in setups:
            try:
                results.append(run_setup(label, workers, url, args.messages, args.clients))
            except ServerDidNotStart as error:
                print(error, file=sys.stderr)
    finally:
        postgres.cleanup()
    print(f"\n{args.messages} web chat messages, {args.clients} concurrent clients, {os.cpu_count()} CPUs")
    print(f"{'set-up':<24}{'msg/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'model':>8}{'db':>7}{'other':>8}")
    for r in results:
        print(
            f"{r['label']:<24}{r['rate']:>8.1f}{r['p50']:>9.0f}{r['p99']:>9.0f}"
            f"{r['model']:>8.0%}{r['database']:>7.0%}{r['other']:>8.0%}"
        )


if __name__ == "__main__":
    main()
