"""The whole responder against the raw model, in one run, on the same machine and the same messages.

    python bench/pipeline.py [--messages 500] [--backends torch,onnx] [--threads N] [--concurrency 8]

For each encoder backend (torch fp32, onnx int8) it prints messages/s and p50/p99 latency of:
  - the raw encoder, one message per call and batches of 32;
  - the heads + knowledge scorer on a ready embedding (what `Models.analyse` adds to the encoder);
  - the full pipeline through the web chat API on SQLite (POST /api/v1/chat on a real uvicorn server:
    store -> identify -> conversation -> understand -> decide -> outbox -> reply), one message at a time
    (latency) and with `--concurrency` clients at once (sustained messages/s);
  - the ratio pipeline p50 / raw encoder single p50;
  - the peak resident memory (RSS) of a freshly started worker (a separate process that loads the models and
    serves a few messages).
Messages: customers' tweets from ../shared/datasets/twcs_sample if present, else the sample brand posts.
Other processes share the CPU: the 1-minute load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_messages(count: int) -> tuple[list[str], str]:
    """`count` customer messages (cycled if the source is smaller) and where they came from."""
    from intents.public_data import datasets_dir

    twcs = datasets_dir() / "twcs_sample" / "twcs_sample.csv"
    texts: list[str] = []
    if twcs.exists():
        with twcs.open(encoding="utf-8", newline="") as handle:
            # label True = written by a customer (inbound), False = the company's reply.
            texts = [row["text"] for row in csv.DictReader(handle) if row["label"] == "True" and row["text"]]
        source = str(twcs)
    if not texts:
        from intents.corpus import own_examples

        texts = [row["text"] for row in own_examples()]
        source = "intents/data/brand_posts.csv"
    return [texts[i % len(texts)] for i in range(count)], source


def timed(calls: Sequence[Callable[[], object]]) -> np.ndarray:
    """Run each call once (after two warm-up calls); return the seconds each took."""
    for call in calls[:2]:
        call()
    seconds = np.empty(len(calls))
    for i, call in enumerate(calls):
        started = time.perf_counter()
        call()
        seconds[i] = time.perf_counter() - started
    return seconds


def row(label: str, messages: int, seconds: np.ndarray, wall: float | None = None) -> dict:
    """A result line: messages/s over the calls' total time (or `wall`), p50/p99 per call in ms."""
    total = wall if wall is not None else float(seconds.sum())
    return {
        "case": label,
        "msg_per_s": messages / total,
        "p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "p99_ms": float(np.percentile(seconds, 99) * 1e3),
    }


def settings_for(backend: str, workdir: Path, threads: int | None):
    """Settings of a worker on `backend`, with its own SQLite file; the ONNX export is shared in workdir."""
    from bot.settings import load_settings

    data = workdir / f"data-{backend}"
    cache = workdir / "onnx-cache"
    (data / "cache").mkdir(parents=True, exist_ok=True)
    onnx_link = data / "cache" / "onnx"
    if not onnx_link.exists():
        cache.mkdir(parents=True, exist_ok=True)
        onnx_link.symlink_to(cache, target_is_directory=True)
    database = data / "socialbot.sqlite3"
    if database.exists():
        database.unlink()
    config = workdir / "settings.toml"  # the defaults, not whatever ./settings.toml says
    config.write_text("")
    return load_settings(
        config,
        data={"dir": data},
        database={"url": f"sqlite:///{database}"},
        intents={"backend": backend, "threads": threads or 0},
        knowledge={"refresh_seconds": 0},
    )


def serve(runtime) -> tuple[str, Callable[[], None]]:
    """The web app on a real uvicorn server in a thread; returns its URL and a stop function."""
    import socket

    import uvicorn

    from bot.web.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


def chat_calls(client, messages: list[str], prefix: str) -> list[Callable[[], object]]:
    """One POST /api/v1/chat per message; 100 customers, each writing several messages."""

    def call(i: int, text: str) -> Callable[[], object]:
        def post() -> None:
            response = client.post(
                "/api/v1/chat", json={"session_id": f"{prefix}-customer-{i % 100:03d}", "text": text}
            )
            response.raise_for_status()

        return post

    return [call(i, text) for i, text in enumerate(messages)]


def bench_backend(backend: str, messages: list[str], args: argparse.Namespace, workdir: Path) -> list[dict]:
    import httpx

    from bot.runtime import build_runtime, load_models

    settings = settings_for(backend, workdir, args.threads)
    started = time.perf_counter()
    models = load_models(settings)
    load_seconds = time.perf_counter() - started
    encoder = models.encoder
    print(f"\n[{backend}] encoder {encoder.name}: models loaded in {load_seconds:.2f} s", flush=True)
    results: list[dict] = []

    single = timed([lambda t=t: encoder.encode([t]) for t in messages])
    results.append(row(f"{backend} encoder, single", len(messages), single))
    batches = [messages[i : i + 32] for i in range(0, len(messages), 32)]
    batched = timed([lambda b=b: encoder.encode(b) for b in batches])
    results.append(row(f"{backend} encoder, batch 32", len(messages), batched))

    vectors = encoder.encode(messages)

    def heads(i: int) -> Callable[[], object]:
        return lambda: (
            models.understander.understand(messages[i], vectors[i]),
            models.knowledge.answer(messages[i], vectors[i]),
        )

    heads_seconds = timed([heads(i) for i in range(len(messages))])
    results.append(row(f"{backend} heads + knowledge", len(messages), heads_seconds))

    runtime = build_runtime(settings, models=models)
    url, stop = serve(runtime)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            sequential = timed(chat_calls(client, messages, f"{backend}-seq"))
        results.append(row(f"{backend} pipeline, one at a time", len(messages), sequential))
        local = threading.local()

        def client_of_thread() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=url, timeout=60)
            return local.client

        calls = [
            lambda t=t, i=i: (
                client_of_thread()
                .post(
                    "/api/v1/chat", json={"session_id": f"{backend}-conc-customer-{i % 100:03d}", "text": t}
                )
                .raise_for_status()
            )
            for i, t in enumerate(messages)
        ]
        timings = np.empty(len(calls))

        def run(index: int) -> None:
            t0 = time.perf_counter()
            calls[index]()
            timings[index] = time.perf_counter() - t0

        batch_sizes_before = len(models.batcher.batch_sizes)
        wall_started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(run, range(len(calls))))
        wall = time.perf_counter() - wall_started
        sizes = list(models.batcher.batch_sizes)[batch_sizes_before:]
        results.append(
            row(f"{backend} pipeline, {args.concurrency} clients", len(messages), timings, wall=wall)
            | {"mean_batch": float(np.mean(sizes)) if sizes else 0.0}
        )
    finally:
        stop()
        runtime.close()
        models.batcher.close()
    results.append(
        {
            "case": f"{backend} pipeline p50 / encoder single p50",
            "ratio": results[3]["p50_ms"] / results[0]["p50_ms"],
        }
    )
    results.append({"case": f"{backend} worker RSS", "rss_mb": worker_rss(backend, workdir, args.threads)})
    return results


WORKER = """
import json, os, resource, sys
sys.path.insert(0, {repo!r})
sys.argv = ["worker"]
from bench.pipeline import settings_for
from pathlib import Path
from bot.runtime import build_runtime
from fastapi.testclient import TestClient
from bot.web.app import create_app
settings = settings_for({backend!r}, Path({workdir!r}), {threads!r})
runtime = build_runtime(settings)
with TestClient(create_app(runtime)) as client:
    for i in range(20):
        body = {{"session_id": "rss-customer-1", "text": "where is my order #%d?" % i}}
        client.post("/api/v1/chat", json=body).raise_for_status()
# Peak resident memory (Linux reports ru_maxrss in KiB).
print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6}}))
"""


def worker_rss(backend: str, workdir: Path, threads: int | None) -> float:
    """Peak RSS in MB of a new process that starts a worker on `backend` and answers 20 web chat messages."""
    code = WORKER.format(repo=str(REPO), backend=backend, workdir=str(workdir / "rss"), threads=threads)
    (workdir / "rss").mkdir(exist_ok=True)
    rss_cache = workdir / "rss" / "onnx-cache"
    if not rss_cache.exists():
        rss_cache.symlink_to(workdir / "onnx-cache", target_is_directory=True)
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(REPO)
    ).stdout
    return json.loads(output.strip().splitlines()[-1])["rss_mb"]


def print_results(results: list[dict]) -> None:
    print(f"\n{'case':<44}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for result in results:
        if "msg_per_s" in result:
            extra = f"   mean batch {result['mean_batch']:.1f}" if "mean_batch" in result else ""
            print(
                f"{result['case']:<44}{result['msg_per_s']:>10.1f}{result['p50_ms']:>10.2f}"
                f"{result['p99_ms']:>10.2f}{extra}"
            )
        elif "ratio" in result:
            print(f"{result['case']:<44}{result['ratio']:>10.2f}x")
        else:
            print(f"{result['case']:<44}{result['rss_mb']:>10.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--threads", type=int, default=None, help="encoder threads (default: one per core)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keeps the ONNX export between runs (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    messages, source = load_messages(args.messages)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="socialbot-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    print(
        f"{len(messages)} messages from {source}; {os.cpu_count()} CPUs; "
        f"load average {load_before:.2f} at start",
        flush=True,
    )
    results: list[dict] = []
    for backend in args.backends.split(","):
        results += bench_backend(backend, messages, args, workdir)
    print_results(results)
    print(f"\nload average (1 min): {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
