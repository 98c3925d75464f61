"""What the message path costs besides the model: SQL statements and transactions per message, and where the
Python time goes.

    python bench/statements.py [--messages 500] [--profile profile.txt]

Runs `handle_inbound` (store -> understand -> decide -> queue -> deliver) on the same customer tweets as
bench/pipeline.py (100 customers writing 5 messages each), on a fresh SQLite file with the `onnx` backend, and
counts with SQLAlchemy's events the statements executed and the transactions committed, per message, with the
most frequent statements (the first words of each), and the CPU time of the calling thread per message: the
message path without the encoder (which runs in the micro-batcher's thread; the heads are in), hardly moved by
other processes' load.
`--profile FILE` also writes a pyinstrument profile of the run to FILE (text; slower while it records).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import in_process_calls, load_messages, settings_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--profile", type=Path, default=None, help="write a pyinstrument profile here")
    args = parser.parse_args()
    if args.messages < 1:
        raise SystemExit("--messages must be at least 1")

    from sqlalchemy import event

    from bot.runtime.analysis import load_models
    from bot.worker.build import build_runtime

    messages, source = load_messages(args.messages)
    workdir = Path(tempfile.mkdtemp(prefix="socialbot-statements-"))
    settings = settings_for("onnx", workdir, None)
    models = load_models(settings)
    runtime = build_runtime(settings, models=models)
    calls = in_process_calls(runtime, messages)
    calls[0]()  # warm-up: the first message pays for imports and caches
    statements: collections.Counter[str] = collections.Counter()
    commits = 0

    def count_statement(_conn, _cursor, statement, _params, _context, _many) -> None:
        statements[" ".join(statement.split()[:4])[:70]] += 1

    def count_commit(_conn) -> None:
        nonlocal commits
        commits += 1

    engine = runtime.engine
    event.listen(engine, "before_cursor_execute", count_statement)
    event.listen(engine, "commit", count_commit)
    profiler = None
    if args.profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    started, cpu_started = time.perf_counter(), time.thread_time()
    try:
        for call in calls[1:]:
            call()
    finally:
        seconds = time.perf_counter() - started
        # This thread's CPU time: the message path's Python and SQL without the encoder, which runs in the
        # micro-batcher's thread (and ONNX Runtime's), and without waiting for the CPU on a busy machine.
        cpu = time.thread_time() - cpu_started
        if profiler is not None:
            profiler.stop()
        runtime.close()
        models.batcher.close()
    count = len(calls) - 1
    print(f"{count} messages from {source}; load average {os.getloadavg()[0]:.2f} at the end")
    under = " (under the profiler)" if profiler else ""
    print(
        f"{seconds / count * 1e3:.1f} ms a message{under}; "
        f"CPU outside the encoder {cpu / count * 1e3:.2f} ms a message"
    )
    per_message = sum(statements.values()) / count
    print(f"statements a message: {per_message:.1f}; commits a message: {commits / count:.2f}")
    for text, times in statements.most_common(25):
        print(f"{times / count:6.2f}  {text}")
    if profiler is not None:
        args.profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        print(f"profile written to {args.profile}")


if __name__ == "__main__":
    main()
