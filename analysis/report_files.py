"""The files of a report: CSVs and PNGs recorded as they are written (so that only they are logged, not
stale files of a reused folder), and the Markdown tables report.md shows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

MARKDOWN_ROWS = 50  # longer tables are cut in report.md (the CSV beside it has every row)
CELL_CHARS = 90


def markdown_table(frame: pd.DataFrame, limit: int = MARKDOWN_ROWS) -> str:
    """A GitHub-flavoured Markdown table (pandas' `to_markdown` needs `tabulate`, which we do not install)."""
    shown = frame.head(limit)
    header = [str(column) for column in shown.columns]
    rows = [[cell(value) for value in row] for row in shown.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if len(frame) > limit:
        lines.append(f"\n({len(frame) - limit} more rows in the CSV.)")
    return "\n".join(lines)


def save_csv(frame: pd.DataFrame, path: Path, written: list[Path]) -> pd.DataFrame:
    frame.to_csv(path, index=False)
    written.append(path)
    return frame


def save_png(path: Path, written: list[Path]) -> None:
    written.append(path)


def cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"
