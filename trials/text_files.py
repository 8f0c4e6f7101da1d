"""The text files users hand over (list files, dataset.json, study YAML, genotype JSON, latency tables, image
lists), read so that a file that is not UTF-8 or does not parse is one error naming the file and the line.

Imports nothing of torch: configs and study files are checked with it in the driver, before anything heavy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class TextFileError(ValueError):
    """A text file that cannot be read or parsed; the message names the file and, where known, the line."""


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The file's text (UTF-8, a byte-order mark dropped); undecodable bytes name their line and column."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TextFileError(f"{path}: the {what} cannot be read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise TextFileError(f"{path}, line {line}: the {what} is not UTF-8 text (byte 0x{data[error.start]:02x} at "
                            f"column {column}); save it as UTF-8") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The parsed JSON of a file; a syntax error names the line and column."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise TextFileError(f"{path}, line {error.lineno}: the {what} is not valid JSON ({error.msg} at column "
                            f"{error.colno})") from None
