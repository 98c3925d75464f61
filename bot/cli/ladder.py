"""`socialbot ladder eval`: the advocacy ladder's rules against contact histories labelled by hand."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import clear_errors, settings_for

app = typer.Typer(help="The advocacy ladder.", no_args_is_help=True, add_completion=False)


class Readings(StrEnum):
    labels = "labels"
    models = "models"


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    data: Annotated[
        Path, typer.Option("--data", help="the histories file (tests/data/ladder_histories.yaml)")
    ],
    readings: Annotated[
        Readings,
        typer.Option(help="read the messages as labelled (the rules alone) or with the shipped models"),
    ] = Readings.labels,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Place every labelled history on the ladder and print the accuracy per split (dev: looked at while
    writing the rules; test: held out), the confusion and the mistakes."""
    from bot.insights.ladder_check import HistoryFileError, evaluate_ladder, load_histories

    with clear_errors(HistoryFileError):
        histories = load_histories(data)
    settings = settings_for(ctx)
    reading = None
    if readings == Readings.models:
        from bot.runtime.analysis import load_models

        models = load_models(settings)

        def reading(texts: list[str]) -> list[tuple[str, str, bool, bool]]:
            understood = models.understander.understand_batch(texts, models.encoder.encode(texts))
            return [(u.intent, u.sentiment, u.abusive, not u.low_confidence) for u in understood]

    result = evaluate_ladder(histories, reading=reading, brand_handles=settings.brand.handles)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(f"ladder on {data} ({len(histories)} histories, messages read by {result.readings})")
    for split, (correct, total) in sorted(result.by_split.items()):
        typer.echo(f"  {split:5} accuracy {correct / total:.3f} ({correct}/{total})")
    typer.echo(f"  all   accuracy {result.accuracy():.3f}")
    for history_id, split, expected, decided, reason in result.mistakes:
        typer.echo(f"  #{history_id} ({split}): expected {expected}, decided {decided}: {reason}")
