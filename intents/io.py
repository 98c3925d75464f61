"""Reading the CSV files the CLI is given, with one clear error line for each thing that can be wrong."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InputFileError", "LabelledRows", "read_labelled_csv", "read_texts_csv"]

csv.field_size_limit(10_000_000)


class InputFileError(ValueError):
    """An input file cannot be used; the message names the file, the problem and, when known, the line."""


@dataclass
class LabelledRows:
    texts: list[str]
    labels: list[str]


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise InputFileError(f"{path}: file not found") from error
    except OSError as error:
        raise InputFileError(f"{path}: cannot read the file ({error.strerror})") from error
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputFileError(
            f"{path}: line {line}: invalid UTF-8 (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        ) from error


def _read(path: Path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    text = _decode(path)
    if not text.strip():
        raise InputFileError(f"{path}: the file is empty; expected a header row with a 'text' column")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
        columns = [name.strip().lower() for name in header]
        missing = [name for name in required if name not in columns]
        if missing:
            raise InputFileError(
                f"{path}: line 1: no {' or '.join(repr(m) for m in missing)} column in the header "
                f"(found: {', '.join(repr(c) for c in header) or 'nothing'})"
            )
        rename = dict(zip(header, columns, strict=True))
        rows = []
        for row in reader:
            if None in row:
                raise InputFileError(f"{path}: line {reader.line_num}: more fields than header columns")
            rows.append((reader.line_num, {rename[k]: (v or "") for k, v in row.items()}))
    except csv.Error as error:
        raise InputFileError(f"{path}: line {reader.line_num}: malformed CSV ({error})") from error
    if not rows:
        raise InputFileError(f"{path}: the file has a header but no rows")
    return columns, rows


def read_texts_csv(path: Path) -> list[str]:
    """The `text` column of a CSV file, in file order (other columns are ignored).

    Raises:
        InputFileError: missing file, invalid UTF-8, empty file, no `text` column, malformed CSV.
    """
    _, rows = _read(Path(path), ["text"])
    return [row["text"] for _, row in rows]


def read_labelled_csv(path: Path, allowed_labels: Sequence[str] | None = None) -> LabelledRows:
    """The `text` and `label` columns of a training or evaluation file.

    Raises:
        InputFileError: as `read_texts_csv`, or labels outside `allowed_labels` (all listed, with the
            first line of each), or a row without a label.
    """
    path = Path(path)
    _, rows = _read(path, ["text", "label"])
    texts, labels = [], []
    unknown: dict[str, int] = {}
    for line, row in rows:
        label = row["label"].strip()
        if not label:
            raise InputFileError(f"{path}: line {line}: empty label")
        if allowed_labels is not None and label not in allowed_labels:
            unknown.setdefault(label, line)
        texts.append(row["text"])
        labels.append(label)
    if unknown:
        listed = ", ".join(f"{label!r} (line {line})" for label, line in unknown.items())
        raise InputFileError(
            f"{path}: unknown label(s) {listed}; expected one of: {', '.join(allowed_labels or [])}"
        )
    return LabelledRows(texts, labels)
