"""The whole responder against the raw model, in one run, on the same machine and the same messages.

    python bench/pipeline.py [--messages 500] [--backends torch,onnx,onnx-fp32] [--threads N]
                             [--concurrency 8]

For each encoder backend (torch fp32, onnx int8, onnx-fp32) it prints messages/s and p50/p99 latency of:
  - the raw encoder, one message per call and batches of 32;
  - the heads + knowledge scorer on a ready embedding (what `Models.analyse` adds to the encoder);
  - the pipeline in this process without HTTP (`handle_inbound`: store -> identify -> conversation ->
    understand -> decide -> outbox -> deliver), one message at a time, and its ratio to the raw encoder;
  - the web chat API of a real worker (`socialbot serve` in its own process, SQLite, POST /api/v1/chat), one
    message at a time (latency) and with `--concurrency` clients at once (sustained messages/s; the mean
    encoder batch size comes from the worker's /metrics);
  - the worker's peak resident memory (RSS) after those runs.
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
    from bot.runtime.settings import load_settings

    return load_settings(write_config(backend, workdir, threads))


def write_config(backend: str, workdir: Path, threads: int | None, *, port: int = 8000) -> Path:
    """A settings file for a worker on `backend`: the defaults, its own fresh SQLite file in
    workdir/data-<backend>, the ONNX export shared in workdir/onnx-cache."""
    data = workdir / f"data-{backend}"
    cache = workdir / "onnx-cache"
    (data / "cache").mkdir(parents=True, exist_ok=True)
    onnx_link = data / "cache" / "onnx"
    if not onnx_link.exists():
        cache.mkdir(parents=True, exist_ok=True)
        onnx_link.symlink_to(cache, target_is_directory=True)
    for stale in data.glob("socialbot.sqlite3*"):
        stale.unlink()
    config = workdir / f"settings-{backend}.toml"
    config.write_text(
        f"[data]\ndir = {json.dumps(str(data))}\n"
        f"[database]\nurl = {json.dumps(f'sqlite:///{data}/socialbot.sqlite3')}\n"
        f'[intents]\nbackend = "{backend}"\nthreads = {threads or 0}\n'
        "[knowledge]\nrefresh_seconds = 0\n"
        "[webchat]\nmessages_per_minute_per_ip = 0\n"  # every message comes from this one machine
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    return config


METRICS_TOKEN = "bench-metrics-token"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Worker:
    """`socialbot serve` in its own process, as in production: the load generator's threads don't share the
    worker's interpreter lock."""

    def __init__(self, backend: str, workdir: Path, threads: int | None) -> None:
        import httpx

        port = free_port()
        config = write_config(backend, workdir, threads, port=port)
        self.url = f"http://127.0.0.1:{port}"
        self.log = (workdir / f"worker-{backend}.log").open("w")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "serve"],
            env={**os.environ, "SOCIALBOT_SERVER__METRICS_TOKEN": METRICS_TOKEN},
            cwd=str(workdir),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the worker exited; see {self.log.name}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.ready_seconds = time.perf_counter() - started

    def peak_rss_mb(self) -> float:
        """The worker's peak resident memory so far (VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
        return float("nan")

    def mean_batch(self) -> float:
        """Mean encoder batch size, from the worker's /metrics."""
        import httpx

        scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        text = httpx.get(self.url + "/metrics", headers=scraper, timeout=10).text
        values = {}
        for line in text.splitlines():
            for name in ("socialbot_encoder_batch_size_sum", "socialbot_encoder_batch_size_count"):
                if line.startswith(name + " "):
                    values[name] = float(line.split()[1])
        count = values.get("socialbot_encoder_batch_size_count", 0.0)
        return values.get("socialbot_encoder_batch_size_sum", 0.0) / count if count else 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


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


def in_process_calls(runtime, messages: list[str]) -> list[Callable[[], object]]:
    """The pipeline without HTTP: `handle_inbound` (store -> understand -> decide -> deliver) per message."""
    from bot.pipeline.inbound import handle_inbound
    from channels.base import Author, InboundMessage

    def call(i: int, text: str) -> Callable[[], object]:
        session = f"inproc-customer-{i % 100:03d}"
        inbound = InboundMessage(
            channel="webchat",
            external_id=f"{session}:{i}",
            thread_id=session,
            author=Author(external_id=session),
            text=text,
            public=False,
        )
        return lambda: handle_inbound(runtime, inbound)

    return [call(i, text) for i, text in enumerate(messages)]


def bench_backend(backend: str, messages: list[str], args: argparse.Namespace, workdir: Path) -> list[dict]:
    import httpx

    from bot.runtime.analysis import load_models
    from bot.worker.build import build_runtime

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
    try:
        in_process = timed(in_process_calls(runtime, messages))
    finally:
        runtime.close()
        models.batcher.close()
    results.append(row(f"{backend} pipeline in-process, no HTTP", len(messages), in_process))

    worker = Worker(backend, workdir, args.threads)
    print(f"[{backend}] worker process ready in {worker.ready_seconds:.1f} s", flush=True)
    try:
        with httpx.Client(base_url=worker.url, timeout=60) as client:
            sequential = timed(chat_calls(client, messages, f"{backend}-seq"))
        results.append(row(f"{backend} web chat API, one at a time", len(messages), sequential))
        timings = np.empty(len(messages))
        # One client for every thread: its cookie jar holds each chat session's token.
        with httpx.Client(base_url=worker.url, timeout=60, limits=httpx.Limits(max_connections=64)) as shared:

            def run(index: int) -> None:
                session_id = f"{backend}-conc-customer-{index % 100:03d}"
                t0 = time.perf_counter()
                shared.post(
                    "/api/v1/chat", json={"session_id": session_id, "text": messages[index]}
                ).raise_for_status()
                timings[index] = time.perf_counter() - t0

            wall_started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(run, range(len(messages))))
            wall = time.perf_counter() - wall_started
        results.append(
            row(f"{backend} web chat API, {args.concurrency} clients", len(messages), timings, wall=wall)
            | {"mean_batch": worker.mean_batch()}
        )
        rss = worker.peak_rss_mb()
    finally:
        worker.stop()
    results.append(
        {
            "case": f"{backend} in-process pipeline p50 / encoder single p50",
            "ratio": results[3]["p50_ms"] / results[0]["p50_ms"],
        }
    )
    results.append({"case": f"{backend} worker peak RSS (after the API runs)", "rss_mb": rss})
    return results


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
    parser.add_argument("--backends", default="torch,onnx,onnx-fp32")
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
