"""`socialbot intents classify | train [--from-crm] | train-encoder | eval | import-corrections | heads
list|rollback`: the understanding heads (and the encoder under them) from the command line."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import clear_errors, fail, progress_bar, settings_for
from intents.encoder import Encoder, EncoderLoadError
from intents.heads import HeadsError
from intents.io import InputFileError
from intents.train_encoder import TrainConfig
from intents.understand import Understander, shipped_heads_dir

app = typer.Typer(
    help="Understand posts (intent, sentiment, abuse): classify a CSV, train a head, evaluate a head.",
    no_args_is_help=True,
    add_completion=False,
)


class Precision(StrEnum):
    int8 = "int8"
    fp32 = "fp32"


class HeadName(StrEnum):
    intent = "intent"
    sentiment = "sentiment"
    abusive = "abusive"


def _encoder(ctx: typer.Context, threads: int | None) -> Encoder:
    """The encoder the settings name (`[intents] backend`): heads trained or scored here see the vectors a
    worker computes."""
    from bot.runtime.analysis import encoder_for

    return encoder_for(settings_for(ctx), threads)


def _load(ctx: typer.Context, heads: Path | None, threads: int | None) -> tuple[Encoder, Understander]:
    understander = Understander.load(heads, variant=settings_for(ctx).intents.variant)
    return _encoder(ctx, threads), understander


InputOption = Annotated[Path, typer.Option("--input", help="CSV file with a 'text' column.")]
OutputOption = Annotated[Path, typer.Option("--output", help="JSON Lines file to write, one object per row.")]
HeadsOption = Annotated[
    Path | None,
    typer.Option("--heads", help="Folder of trained heads (default: the shipped ones of [intents] variant)."),
]
ThreadsOption = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for the encoder.")]


@app.command()
def classify(
    ctx: typer.Context,
    input: InputOption,
    output: OutputOption,
    heads: HeadsOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Classify each CSV row into one JSON line {"intent", "confidence", "sentiment", "abusive"}, in order."""
    from intents.io import read_texts_csv
    from intents.service import classify_file

    with clear_errors(InputFileError, HeadsError, EncoderLoadError):
        total = len(read_texts_csv(input))
        encoder, understander = _load(ctx, heads, threads)
        with progress_bar("classifying", total) as advance:
            written = classify_file(input, output, encoder, understander, advance)
    typer.echo(f"{written} rows classified -> {output}", err=True)


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option("--data", help="CSV file with 'text' and 'label' columns.")
    ] = None,
    from_crm: Annotated[
        bool,
        typer.Option(
            "--from-crm",
            help="Retrain the corrected heads on the brand's corrections and install them if better on a "
            "held-out fifth of those corrections.",
        ),
    ] = False,
    head: Annotated[HeadName, typer.Option("--head", help="Which head to train.")] = HeadName.intent,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the heads to.")] = Path("intents-heads"),
    threads: ThreadsOption = None,
) -> None:
    """Train one head on a labelled CSV (the folder written can be set as [intents] heads_dir), or, with
    --from-crm, learn from the brand's corrections (a new version of the heads, `intents heads` to list)."""
    if from_crm:
        _train_from_crm(ctx, threads)
        return
    if data is None:
        raise fail("give --data FILE.csv, or --from-crm to learn from the brand's corrections")
    from intents.io import read_labelled_csv
    from intents.service import train_file

    with clear_errors(InputFileError, HeadsError, EncoderLoadError):
        total = len(read_labelled_csv(data).texts)
        encoder = _encoder(ctx, threads)
        with progress_bar("embedding", total) as advance:
            base = shipped_heads_dir(settings_for(ctx).intents.variant)
            trained = train_file(data, head.value, out, encoder, base_heads=base, progress=advance)
    thresholds = ", ".join(f"{k} {v:.2f}" for k, v in trained.thresholds.items())
    typer.echo(
        f"{head.value} head written to {out / (head.value + '.npz')}"
        + (f" (thresholds: {thresholds})" if thresholds else ""),
        err=True,
    )


def _versions(ctx: typer.Context):
    """The learning loop's versions of the heads, or a clear error when [intents] heads_dir pins a folder."""
    from bot.runtime.analysis import head_versions

    settings = settings_for(ctx)
    versions = head_versions(settings)
    if versions is None:
        raise fail(
            f"[intents] heads_dir pins the heads to {settings.intents.heads_dir}; empty it to use the "
            "learning loop's versions"
        )
    return settings, versions


def _train_from_crm(ctx: typer.Context, threads: int | None) -> None:
    from bot.cli.common import open_database
    from bot.insights.learning import LearningError, train_from_crm

    settings, versions = _versions(ctx)
    with clear_errors(LearningError, HeadsError, EncoderLoadError):
        engine = open_database(settings)
        try:
            report = train_from_crm(
                engine,
                versions,
                _encoder(ctx, threads),
                pinned_threshold=settings.knowledge.threshold,
            )
        finally:
            engine.dispose()
    for line in report.lines():
        typer.echo(line)


heads_app = typer.Typer(
    help="The versions of the heads `train --from-crm` installed: list them, roll back.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(heads_app, name="heads")


@heads_app.command("list")
def heads_list(ctx: typer.Context) -> None:
    """One line per version, oldest first; the active one is marked with *."""
    _, versions = _versions(ctx)
    current = versions.current()
    for version in ["shipped", *versions.versions()]:
        manifest = versions.manifest(version)
        if manifest:
            figures = "; ".join(
                f"{head} {h['before']:.3f} -> {h['after']:.3f} ({h['train']}+{h['held_out']} corrections)"
                for head, h in manifest["heads"].items()
                if h["installed"]
            )
            threshold = manifest.get("answer_threshold") or {}
            if threshold.get("installed"):
                figures = "; ".join(
                    part
                    for part in (
                        figures,
                        f"answer threshold {threshold['before']:.3f} -> {threshold['after']:.3f} "
                        f"({threshold['train']}+{threshold['held_out']} marks)",
                    )
                    if part
                )
            about = f"{manifest['created_at']}, on {manifest['base']}: {figures}"
        else:
            about = "the heads shipped with socialbot"
        typer.echo(f"{'*' if version == current else ' '} {version}  {about}")


@heads_app.command("rollback")
def heads_rollback(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Argument(help="Version to make active (default: the one before the active one).")
    ] = None,
) -> None:
    """Make an earlier version of the heads active (workers load it at their next knowledge refresh)."""
    _, versions = _versions(ctx)
    with clear_errors(HeadsError):
        was = versions.current()
        now = versions.rollback(version)
    typer.echo(f"heads {now} active (was {was})")


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="CSV file with 'text' and 'label' columns.")],
    head: Annotated[HeadName, typer.Option("--head", help="Which head to evaluate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    heads: HeadsOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Per-class precision / recall / F1, macro-F1 and the confusion matrix of one head on a labelled CSV."""
    from intents.evaluation import format_report
    from intents.io import read_labelled_csv
    from intents.service import evaluate_file

    with clear_errors(InputFileError, HeadsError, EncoderLoadError):
        total = len(read_labelled_csv(data).texts)
        encoder, understander = _load(ctx, heads, threads)
        with progress_bar("evaluating", total) as advance:
            report = evaluate_file(data, head.value, encoder, understander, advance)
    if as_json:
        typer.echo(json.dumps({"head": head.value, **report.to_dict()}, indent=2))
    else:
        typer.echo(f"{head.value} head on {data} ({report.total} rows)\n")
        typer.echo(format_report(report))


@app.command("train-encoder")
def train_encoder_command(
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps.")] = TrainConfig.steps,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the trained weights (the original model's layout).")
    ] = Path("encoder-weights"),
    work: Annotated[
        Path | None,
        typer.Option("--work", help="Checkpoint folder; a stopped run resumes from it (default: ~/.cache)."),
    ] = None,
    ship: Annotated[
        bool,
        typer.Option(
            "--ship/--no-ship",
            help="Then make it the shipped encoder (intents/model; retrain the heads after: "
            "scripts/train_intents.py).",
        ),
    ] = False,
    permissive_only: Annotated[
        bool, typer.Option("--permissive-only", help="Own examples and CC BY / CDLA data sets only.")
    ] = False,
    threads: ThreadsOption = None,
) -> None:
    """Fine-tune the sentence encoder on every task at once (needs the train extra and ../shared/datasets;
    fixed seeds; a checkpoint every 5 minutes)."""
    from intents.public_data import DatasetMissingError
    from intents.train_encoder import DEFAULT_WORK_DIR, train_encoder
    from intents.train_encoder import ship as ship_weights

    for option, folder in (("--out", out), ("--work", work)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise fail(f"{option} {folder}: not a folder")
    with clear_errors(EncoderLoadError, DatasetMissingError):
        config = TrainConfig(steps=steps, permissive_only=permissive_only)
        train_encoder(config, out=out, work_dir=work or DEFAULT_WORK_DIR, threads=threads)
        if ship:
            ship_weights(out)


@app.command("export-onnx")
def export_onnx(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Export again even if the file exists.")] = False,
    precision: Annotated[
        Precision,
        typer.Option(
            help="int8: rebuild the shipped model in intents/model and the permissive variant's tensors "
            '(maintainers); fp32: the export for [intents] backend = "onnx-fp32" of [intents] variant, into '
            "[data] dir."
        ),
    ] = Precision.fp32,
) -> None:
    """Export the original weights to ONNX (needs the train extra: torch, transformers, the weights package).

    The product ships the int8 export, so a worker never exports; a worker on backend "onnx-fp32" exports on
    first start."""
    import time

    from intents.onnx_encoder import cached_model_path, export_onnx_model, export_shipped_model

    with clear_errors(InputFileError, HeadsError, EncoderLoadError):
        started = time.perf_counter()
        if precision is Precision.int8:
            out = export_shipped_model()
        else:
            from intents.encoder import reference_model_path

            settings = settings_for(ctx)
            weights = reference_model_path(settings.intents.variant)
            out = cached_model_path(settings.data.onnx_cache_dir, weights, precision=precision.value)
            if out.exists() and not force:
                typer.echo(f"{out} is already exported (--force to export again)", err=True)
                return
            export_onnx_model(out, weights, precision=precision.value)
    size_mb = out.stat().st_size / 1e6
    typer.echo(
        f"encoder exported to {out} ({size_mb:.1f} MB, {time.perf_counter() - started:.1f} s)", err=True
    )


@app.command("import-corrections")
def import_corrections_command(
    ctx: typer.Context,
    data: Annotated[
        Path, typer.Argument(help="CSV with a 'text' column and any of 'intent', 'sentiment', 'abusive'.")
    ],
) -> None:
    """Add labelled examples to the brand's corrections (what `train --from-crm` learns from)."""
    from bot.cli.common import open_database
    from bot.insights.corrections import CorrectionError, import_corrections

    with clear_errors(CorrectionError):
        engine = open_database(settings_for(ctx))
        try:
            report = import_corrections(engine, data)
        finally:
            engine.dispose()
    added = ", ".join(f"{n} {aspect}" for aspect, n in sorted(report.added.items())) or "nothing"
    typer.echo(f"added {added} from {data.name} ({report.skipped} already there)")
