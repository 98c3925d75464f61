"""`socialbot intents classify | train | eval | train-encoder | import-corrections`: the understanding model
from the command line."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import clear_errors, settings_for
from intents.encoder import MODEL_ROOT, EncoderLoadError, SentenceEncoder, load_encoder, model_dir
from intents.heads import HeadsError
from intents.io import InputFileError
from intents.understand import Understander

app = typer.Typer(
    help=(
        "Understand posts (intent, sentiment, abuse): classify a CSV, train or evaluate a head, "
        "fine-tune the encoder."
    ),
    no_args_is_help=True,
    add_completion=False,
)


class HeadName(StrEnum):
    intent = "intent"
    sentiment = "sentiment"
    abusive = "abusive"


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _load(
    ctx: typer.Context, heads: Path | None, threads: int | None
) -> tuple[SentenceEncoder, Understander]:
    """The encoder `socialbot serve` runs (the shipped model named by [intents] model, on ONNX Runtime) and
    the heads: `heads`, else the model's own."""
    model = settings_for(ctx).intents.model
    understander = Understander.load(heads or model_dir(model))
    return load_encoder(model, threads=threads or None), understander


InputOption = Annotated[Path, typer.Option("--input", help="CSV file with a 'text' column.")]
OutputOption = Annotated[Path, typer.Option("--output", help="JSON Lines file to write, one object per row.")]
HeadsOption = Annotated[
    Path | None,
    typer.Option("--heads", help="Folder of trained heads (default: those of the [intents] model)."),
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
    """Classify each CSV row into one JSON line {"intent", "confidence", "sentiment", "abusive"}, in order
    (in batches, with the runtime `socialbot serve` uses)."""
    from intents.io import read_texts_csv
    from intents.service import classify_file

    with clear_errors(InputFileError, HeadsError, EncoderLoadError):
        total = len(read_texts_csv(input))
        encoder, understander = _load(ctx, heads, threads)
        with _progress("classifying", total) as advance:
            written = classify_file(input, output, encoder, understander, advance)
    typer.echo(f"{written} rows classified -> {output}", err=True)


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="CSV file with 'text' and 'label' columns.")],
    head: Annotated[HeadName, typer.Option("--head", help="Which head to train.")] = HeadName.intent,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the heads to.")] = Path("intents-heads"),
    threads: ThreadsOption = None,
) -> None:
    """Train one head on a labelled CSV; the folder written can be set as [intents] heads_dir."""
    from intents.io import read_labelled_csv
    from intents.service import train_file

    with clear_errors(InputFileError, HeadsError, EncoderLoadError):
        total = len(read_labelled_csv(data).texts)
        model = settings_for(ctx).intents.model
        encoder = load_encoder(model, threads=threads or None)
        with _progress("embedding", total) as advance:
            trained = train_file(
                data, head.value, out, encoder, base_heads=model_dir(model), progress=advance
            )
    thresholds = ", ".join(f"{k} {v:.2f}" for k, v in trained.thresholds.items())
    typer.echo(
        f"{head.value} head written to {out / (head.value + '.npz')}"
        + (f" (thresholds: {thresholds})" if thresholds else ""),
        err=True,
    )


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
        with _progress("evaluating", total) as advance:
            report = evaluate_file(data, head.value, encoder, understander, advance)
    if as_json:
        typer.echo(json.dumps({"head": head.value, **report.to_dict()}, indent=2))
    else:
        typer.echo(f"{head.value} head on {data} ({report.total} rows)\n")
        typer.echo(format_report(report))


class Variant(StrEnum):
    default = "default"
    permissive = "permissive"


@app.command("train-encoder")
def train_encoder(
    variant: Annotated[
        Variant, typer.Option(help="default: every data set; permissive: only commercially usable ones.")
    ] = Variant.default,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the recipe's).")] = None,
    work: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoint folder; the same command resumes from it (default: ~/.cache/socialbot)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where the model folders go (default: the package's intents/model).")
    ] = None,
    threads: ThreadsOption = None,
    calibrate_only: Annotated[
        bool, typer.Option("--calibrate-only", help="Only choose the thresholds of the model folder again.")
    ] = False,
    export_only: Annotated[
        bool,
        typer.Option(
            "--export-only",
            help="Export and calibrate the model of the latest checkpoint without training further "
            "(a stopped run can still ship).",
        ),
    ] = False,
) -> None:
    """Fine-tune the encoder with its heads, export it to ONNX with 8-bit weights and calibrate it (needs the
    train extra and ../shared/datasets; see intents/train_encoder.py)."""
    from intents import train_encoder as training
    from intents.public_data import DatasetMissingError

    out = out or MODEL_ROOT
    with clear_errors(EncoderLoadError, DatasetMissingError, InputFileError):
        if calibrate_only:
            training.calibrate_folder(out / variant.value)
            return
        config = training.TrainConfig(variant=variant.value)
        if steps is not None:
            config = dataclasses.replace(config, steps=steps)
        work = work or training.DEFAULT_WORK_DIR
        if export_only:
            folder = training.export_checkpoint(config, work_dir=work, out_root=out)
        else:
            folder = training.train_encoder(config, work_dir=work, out_root=out, threads=threads)
    typer.echo(f"{variant.value} model written to {folder}", err=True)


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
