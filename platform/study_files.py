"""Every file a study names, read once in the driver before any trial starts: latency tables, genotypes (by
file or in text) and the weights a retrain starts from. (List files and images are the datasets':
study_data.) A bad file would otherwise fail every trial the same way, on a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from study_spec import Study

from trials.config import make_config

FILE_KEYS = ("latency_table", "genotype", "pretrained")
NOT_FILES = {"genotype": ("supernet", "random")}  # a search's supernet; a retrain's genotype drawn from its seed


class FileError(ValueError):
    """A file a study names cannot be used; the message names the phase, the field and the file's problem."""


def named_values(study: Study) -> Iterator[tuple[str, str, Any]]:
    """(where, key, value) for every value of a file key a trial of the study can get."""
    for phase in study.phases:
        for key in FILE_KEYS:
            at = f"phases.{phase.name}"
            if phase.config.get(key) is not None:
                yield f"{at}.config.{key}", key, phase.config[key]
            for value in phase.grid.get(key, []):
                yield f"{at}.grid.{key}", key, value
            for value in phase.space.get(key, {}).get("choice", []):
                yield f"{at}.space.{key}", key, value


def check_files(study: Study) -> None:
    """Read each named file as the trials will; the first that fails is one FileError."""
    checks = {"latency_table": _table, "genotype": _genotype, "pretrained": _weights}
    for where, key, value in named_values(study):
        if value in NOT_FILES.get(key, ()):
            continue
        try:
            checks[key](value)
        except ValueError as error:
            hint = ""
            if key == "pretrained":
                authors = study.authors_pretrained or "msinet_msmt.pth.tar"
                hint = (f" (the authors' ImageNet-pretrained file is {authors}; without pretrained= the trials "
                        "train from scratch)")
            raise FileError(f"{given_by(study, where, key, value)}: {error}{hint}") from None


def given_by(study: Study, where: str, key: str, value: Any) -> str:
    """Where the user gave the value: the `--set` pair when one set it, else the study file and field."""
    for name, given in study.overrides.items():
        values = given if isinstance(given, list) else [given]
        if name.split(".")[-1] == key and any(_same(v, value) for v in values):
            return f"--set {name}={given}"
    return f"{study.path}: {where}"


def _same(given: Any, value: Any) -> bool:
    """The value as given, or as the study made it (file paths made absolute)."""
    return str(given) == str(value) or str(Path(str(given)).expanduser().resolve()) == str(value)


def _table(value: Any) -> None:
    from spaces.latency import load_table  # torch: only when a study names a table

    load_table(make_config("search", {"latency_table": value}).latency_table_path)


def _genotype(value: Any) -> None:
    from trials.retrain import resolve_retrain_genotype  # torch: only when a study names a genotype

    resolve_retrain_genotype(str(value), 0)


def _weights(value: Any) -> None:
    from trials.retrain import read_pretrained  # torch: only when a study names weights

    read_pretrained(str(value))
