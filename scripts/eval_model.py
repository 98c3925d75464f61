"""Every figure of intents/MODEL_CARD.md for one model folder, in one run, on rows nothing trained or
calibrated on.

    python scripts/eval_model.py [--model intents/model/default] [--out intents/figures] [--threads 1]
                                 [--baseline DIR] [--cache DIR] [--skip-kb]

Writes `<out>/<variant>.json` (every figure, what it measures, its bar) and `<out>/<variant>.md` (the tables
the model card shows), each naming the model (with the digest of its files), so a figure is never read
against another model. What it measures:

- understanding (`intents.quality`, the rows `intents.splits` holds out): complaint F1, recommendation at a
  tenth of posts, the five intents at real-traffic shares (macro-F1 and per class), sentiment (TweetEval
  val, airline held-out fold), abuse under issue 25's definition (TweetEval offensive val relabelled,
  Bitext rude requests, tests/data/twcs_support_labels.csv) and the Fernhill traffic's test rows;
- the decision, through the real pipeline (`handle_inbound` with the model and the sample knowledge base):
  the Fernhill test rows' action and article, the share of the 464 real service requests of
  twcs_support_labels.csv that are silenced (held for moderation without a reply; issue 25: <= 1 %) and
  the abuse-at-people rows flagged, and the demo's three sentences from issue 17;
- the knowledge base (`scripts/eval_knowledge.py`'s protocol): Banking77 held-out questions and CLINC150
  (never trained on) for this model and, with `--baseline DIR`, for the frozen baseline: a model folder of
  the original all-MiniLM-L6-v2 exported by the same recipe, without training, e.g.
  `export_model_folder(AutoModel.from_pretrained(default_model_path()), default_model_path() /
  "tokenizer.json", {}, Path("/tmp/exp/q8"), name="orig-q8", metadata={})` (intents/export.py);
- cost: the shipped bytes, and the latency of one message alone (encoder + heads) with the load average
  it was measured under (a figure for the README comes from `bench/` on a quiet machine).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from intents.encoder import SentenceEncoder, model_dir, read_model_json  # noqa: E402
from intents.quality import TWCS_LABELS, Figure  # noqa: E402
from intents.understand import Understander  # noqa: E402
from scripts.eval_intents import GROUPS  # noqa: E402

DEMO_SENTENCES = [
    # (text, what issue 17 saw go wrong)
    ("Is the Summit 2 tent waterproof?", "was answered with the washing article"),
    ("how do i reset my password", "was read as Italian"),
    ("how long does delivery take?", "was read as negative"),
]
DEFAULT_CACHE = Path.home() / ".cache" / "socialbot" / "eval-model"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the decision, through the pipeline -------------------------------------------------------------------


def _runtime(folder: Path, encoder: SentenceEncoder, work: Path):
    from bot.runtime.analysis import Models, sample_knowledge_dir
    from bot.runtime.settings import load_settings
    from bot.worker.build import build_runtime
    from knowledge import KnowledgeBase

    settings = load_settings(
        data={"dir": work / "data"},
        knowledge={"refresh_seconds": 0},
        followups={"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"},
    )
    knowledge = KnowledgeBase.build(sample_knowledge_dir(), encoder, cache_dir=work / "index")
    return build_runtime(
        settings, models=Models(encoder, Understander.load(folder), knowledge, refresh_seconds=0)
    )


def _send(runtime, thread: str, text: str, channel: str):
    """One message as a new customer's first; returns (action, the stored Message)."""
    from sqlmodel import Session

    from bot.crm.models import Message
    from bot.pipeline.inbound import handle_inbound
    from channels.base import Author, InboundKind, InboundMessage

    inbound = InboundMessage(
        channel=channel,
        external_id=thread,
        thread_id=thread,
        author=Author(thread),
        text=text,
        public=channel == "twitter",
        kind=InboundKind.GREETING if text == "/start" else InboundKind.MESSAGE,
    )
    result = handle_inbound(runtime, inbound)
    with Session(runtime.engine) as session:
        message = session.get(Message, result.message_id)
        session.expunge(message)
    return result.action, message


def decision_figures(folder: Path, encoder: SentenceEncoder) -> tuple[list[Figure], list[dict]]:
    from intents import public_data

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="eval-model-") as temporary:
        runtime = _runtime(folder, encoder, Path(temporary))
        try:
            demo = []
            for number, (text, before) in enumerate(DEMO_SENTENCES):
                action, message = _send(runtime, f"demo-{number}", text, "webchat")
                demo.append(
                    {
                        "text": text,
                        "before": before,
                        "action": action,
                        "article": message.kb_article_id,
                        "language": message.language,
                        "intent": message.intent,
                        "sentiment": message.sentiment,
                    }
                )
            with (REPO / "tests" / "data" / "fernhill_traffic.csv").open(
                encoding="utf-8", newline=""
            ) as handle:
                rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
            right = 0
            for number, row in enumerate(rows):
                action, message = _send(runtime, f"fernhill-{number}", row["text"], row["channel"])
                right += action == row["expected_action"] and (
                    not row["expected_article"] or message.kb_article_id == row["expected_article"]
                )
            figures.append(
                Figure(
                    "fernhill_decision_right",
                    round(right / len(rows), 4),
                    f"tests/data/fernhill_traffic.csv test rows ({len(rows)}) through the pipeline: "
                    "action and article as expected",
                    0.95,
                )
            )
            with TWCS_LABELS.open(encoding="utf-8", newline="") as handle:
                labelled = list(csv.DictReader(handle))
            tweets = public_data.twcs_texts()
            silenced = service = abuse = abuse_caught = 0
            for row in labelled:
                action, message = _send(
                    runtime, f"twcs-{row['tweet_id']}", tweets[row["tweet_id"]], "twitter"
                )
                if row["service_request"] == "yes":
                    service += 1
                    silenced += action == "moderate"
                if row["abuse_at_people"] == "yes":
                    abuse += 1
                    abuse_caught += bool(message.abusive)
            figures.append(
                Figure(
                    "twcs_service_requests_silenced",
                    round(silenced / service, 4),
                    f"{TWCS_LABELS.name}: {silenced} of {service} real service requests held for moderation "
                    "without a reply, through the pipeline (issue 25: <= 0.01)",
                )
            )
            figures.append(
                Figure(
                    "twcs_abuse_flagged_by_the_pipeline",
                    round(abuse_caught / max(abuse, 1), 4),
                    f"same file: {abuse_caught} of its {abuse} abuse-at-people tweets flagged "
                    "(too few for a recall)",
                )
            )
        finally:
            runtime.close()
    return figures, demo


# --- the knowledge base -----------------------------------------------------------------------------------


def knowledge_figures(encoder, tag: str, cache: Path) -> list[Figure]:
    """Banking77 and CLINC150 as scripts/eval_knowledge.py measures them (its printout goes to stderr)."""
    import shutil

    from scripts.eval_knowledge import EmbeddingCache, banking77, clinc150

    datasets = REPO.parent / "shared" / "datasets"
    work = cache / f"kbs-{tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    embed = EmbeddingCache(encoder, cache)
    with contextlib.redirect_stdout(sys.stderr):
        banking = banking77(datasets, work, embed, cache)
        threshold, clinc = clinc150(datasets, work, embed, cache)
    return [
        Figure(
            f"kb_banking77_top1_{tag}",
            round(banking.top1, 4),
            f"Banking77, 20 questions per article, {banking.rows} held-out questions; "
            f"top-3 {banking.top3:.4f}",
            0.92 if tag == "model" else None,
        ),
        Figure(
            f"kb_clinc150_top1_{tag}",
            round(clinc.top1, 4),
            f"CLINC150 (never trained on), report half of val + oos_val ({clinc.rows} rows); threshold "
            f"{threshold} chosen on the other half; answered correctly {clinc.correct_answer_rate:.4f}",
            0.88 if tag == "model" else None,
        ),
        Figure(
            f"kb_clinc150_declined_{tag}",
            round(clinc.decline_rate or 0.0, 4),
            "same rows: out-of-scope questions declined",
            0.75 if tag == "model" else None,
        ),
    ]


# --- cost -------------------------------------------------------------------------------------------------


def cost_figures(folder: Path, encoder: SentenceEncoder, understander: Understander) -> list[Figure]:
    from intents.corpus import own_examples

    meta = read_model_json(folder)
    paths = {(folder / entry["path"]).resolve(): entry["bytes"] for entry in meta["files"].values()}
    texts = [row["text"] for row in own_examples()][:200]
    for text in texts[:10]:
        understander.understand(text, encoder.encode([text])[0])
    load = os.getloadavg()[0]
    timings = []
    for text in texts:
        started = time.perf_counter()
        understander.understand(text, encoder.encode([text])[0])
        timings.append(time.perf_counter() - started)
    return [
        Figure(
            "model_megabytes",
            round(sum(paths.values()) / 1e6, 1),
            f"{len(paths)} files as model.json lists them",
        ),
        Figure(
            "latency_ms_p50_single_message",
            round(statistics.median(timings) * 1e3, 1),
            f"encoder + heads, one message per call, {len(texts)} written brand posts, 1-minute load average "
            f"{load:.2f} at the start (not a README figure unless the machine was quiet)",
        ),
    ]


# --- output -----------------------------------------------------------------------------------------------


def files_table(folder: Path) -> list[str]:
    """The model's files as `model.json` lists them (the runtime checks each sha256 when it loads)."""
    meta = read_model_json(folder)
    lines = ["| file | role | bytes | sha256 |", "|---|---|---:|---|"]
    for role, entry in meta["files"].items():
        path = (folder / entry["path"]).resolve().relative_to(folder.parent.parent.parent.resolve())
        lines.append(f"| `{path}` | {role} | {entry['bytes']:,} | `{entry['sha256']}` |")
    return lines


def markdown(name: str, figures: list[Figure], demo: list[dict], folder: Path) -> str:
    lines = [f"Model `{name}`; `python scripts/eval_model.py` (held-out rows only).", ""]
    lines += [*files_table(folder), ""]
    lines += ["| figure | value | bar | what |", "|---|---:|---:|---|"]
    for figure in figures:
        bar = "" if figure.bar is None else f"{figure.bar} {'✓' if figure.passed else '✗'}"
        lines.append(f"| {figure.name} | {figure.value:g} | {bar} | {figure.detail} |")
    if demo:
        lines += [
            "",
            "| demo sentence | before issue 17 | language | intent | sentiment | action | article |",
        ]
        lines.append("|---|---|---|---|---|---|---|")
        for row in demo:
            lines.append(
                f"| {row['text']} | {row['before']} | {row['language']} | {row['intent']} "
                f"| {row['sentiment']} | {row['action']} | {row['article'] or ''} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=model_dir("default"), help="a model folder")
    parser.add_argument("--out", type=Path, default=REPO / "intents" / "figures")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--baseline", type=Path, default=None, help="model folder of the frozen original")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="embeddings kept between runs")
    parser.add_argument("--skip-kb", action="store_true", help="leave out the knowledge-base figures")
    args = parser.parse_args()
    folder = args.model.resolve()
    encoder = SentenceEncoder.load(folder, threads=args.threads)
    understander = Understander.load(folder)
    variant = read_model_json(folder).get("variant", folder.name)
    log(f"model {encoder.name} ({folder})")
    figures: list[Figure] = []
    for name, group in GROUPS.items():
        started = time.perf_counter()
        figures += group(encoder, understander)
        log(f"  {name}: {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    decided, demo = decision_figures(folder, encoder)
    figures += decided
    log(f"  pipeline: {time.perf_counter() - started:.0f} s")
    if not args.skip_kb:
        started = time.perf_counter()
        figures += knowledge_figures(encoder, "model", args.cache)
        if args.baseline is not None:
            baseline = SentenceEncoder.load(args.baseline, threads=args.threads)
            figures += knowledge_figures(baseline, "frozen_baseline", args.cache)
        log(f"  knowledge: {time.perf_counter() - started:.0f} s")
    figures += cost_figures(folder, encoder, understander)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": encoder.name,
        "folder": str(folder),
        "figures": [figure.to_dict() for figure in figures],
        "demo": demo,
    }
    (args.out / f"{variant}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / f"{variant}.md").write_text(markdown(encoder.name, figures, demo, folder), encoding="utf-8")
    print(markdown(encoder.name, figures, demo, folder))
    log(f"written to {args.out / variant}.json and .md")


if __name__ == "__main__":
    main()
