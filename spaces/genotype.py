"""Genotypes of the MSI search space: which interaction operation sits in each of the 12 slots.

Cell k (k = 0..5) uses slot 2k after its first step and slot 2k + 1 after its second step. The compact
text form writes one group of two per cell, e.g. ``ag-ag/exc-ag/cross_att-ag/ag-none/ag-cross_att/
exc-cross_att`` (the published MSMT17 genotype). This module is pure Python so that configuration can be
validated without importing torch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trials.text_files import read_json  # shared by every text file a user hands over; pure Python

NUM_CELLS = 6
OPS_PER_CELL = 2
NUM_SLOTS = NUM_CELLS * OPS_PER_CELL

# Canonical (official) short names; the order is also the column order of the supernet's alpha.
OPERATIONS: tuple[str, ...] = ("none", "exc", "ag", "cross_att")
DESCRIPTIVE_NAMES: dict[str, str] = {
    "identity": "none",
    "exchange": "exc",
    "channel_gate": "ag",
    "cross_attention": "cross_att",
}


def canonical_operation(name: str) -> str:
    """The official short name of an operation given either its short or its descriptive name."""
    key = name.strip().lower()
    if key in OPERATIONS:
        return key
    if key in DESCRIPTIVE_NAMES:
        return DESCRIPTIVE_NAMES[key]
    allowed = ", ".join(OPERATIONS) + " (or " + ", ".join(DESCRIPTIVE_NAMES) + ")"
    raise ValueError(f"unknown interaction operation {name!r}; allowed: {allowed}")


@dataclass(frozen=True)
class Genotype:
    """An immutable choice of one interaction operation per slot (12 slots, canonical names)."""

    ops: tuple[str, ...]

    def __init__(self, ops: Iterable[str]) -> None:
        if isinstance(ops, str):
            raise ValueError("Genotype takes a sequence of 12 operation names; use Genotype.parse() for text")
        names = tuple(canonical_operation(op) for op in ops)
        if len(names) != NUM_SLOTS:
            raise ValueError(
                f"a genotype has {NUM_SLOTS} operations ({NUM_CELLS} groups of {OPS_PER_CELL}, "
                f"one group per cell), got {len(names)}"
            )
        object.__setattr__(self, "ops", names)

    def cell(self, k: int) -> tuple[str, str]:
        """The two operations of cell k: (after step 1, after step 2)."""
        return self.ops[2 * k], self.ops[2 * k + 1]

    def __str__(self) -> str:
        return "/".join("-".join(self.cell(k)) for k in range(NUM_CELLS))

    def __iter__(self) -> Iterator[str]:
        return iter(self.ops)

    def __len__(self) -> int:
        return NUM_SLOTS

    @classmethod
    def parse(cls, text: str) -> Genotype:
        """Read the compact form: 6 groups separated by '/' (or '|'), 2 names per group joined by '-'."""
        groups = [g.strip() for g in text.strip().replace("|", "/").split("/")]
        if len(groups) != NUM_CELLS or any(not g for g in groups):
            raise ValueError(
                f"malformed genotype text {text!r}: expected {NUM_CELLS} groups of {OPS_PER_CELL} "
                f"operations separated by '/', e.g. {str(NAMED_GENOTYPES['msmt'])!r}"
            )
        ops: list[str] = []
        for k, group in enumerate(groups):
            names = group.replace("-", " ").split()
            if len(names) != OPS_PER_CELL:
                raise ValueError(
                    f"malformed genotype text {text!r}: group {k} ({group!r}) should hold "
                    f"{OPS_PER_CELL} operations joined by '-', got {len(names)}"
                )
            ops.extend(names)
        return cls(ops)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the 12 names (read back) and the compact text (for people)."""
        return {"ops": list(self.ops), "compact": str(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        """Accepts {"ops": [...]} (ours) or {"genotype": [...]} (the reference key listing)."""
        for key in ("ops", "genotype"):
            if key in data:
                value = data[key]
                return cls.parse(value) if isinstance(value, str) else cls(value)
        raise ValueError(f"genotype JSON needs an 'ops' list of {NUM_SLOTS} names, got keys {sorted(data)}")

    def to_json(self) -> str:
        """The artefact form logged with runs and read by :func:`resolve_genotype`."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        """Reads :meth:`to_json` output, a bare list of 12 names, or a JSON string in compact form."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"genotype JSON is not valid JSON: {err}") from err
        return cls.from_parsed(data)

    @classmethod
    def from_parsed(cls, data: Any) -> Genotype:
        """The genotype of parsed JSON: an object (:meth:`from_dict`), a list of 12 names or compact text."""
        if isinstance(data, list):
            return cls(data)
        if isinstance(data, str):
            return cls.parse(data)
        if not isinstance(data, dict):
            raise ValueError(f"genotype JSON must be an object or a list, got {type(data).__name__}")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the JSON form to a file."""
        Path(path).write_text(self.to_json() + "\n")


NAMED_GENOTYPES: dict[str, Genotype] = {
    # Searched on MSMT17 with TCM and published with the paper.
    "msmt": Genotype(["ag", "ag", "exc", "ag", "cross_att", "ag", "ag", "none", "ag", "cross_att",
                      "exc", "cross_att"]),
}


def named_genotypes() -> dict[str, Genotype]:
    """The genotypes that can be referred to by name (a copy)."""
    return dict(NAMED_GENOTYPES)


def random_genotype(seed: int) -> Genotype:
    """A uniformly random genotype, reproducible from the seed: the random-search baseline."""
    rng = random.Random(seed)
    return Genotype(rng.choice(OPERATIONS) for _ in range(NUM_SLOTS))


def resolve_genotype(spec: Genotype | str | Path | Iterable[str]) -> Genotype:
    """One entry point for CLIs and configs: a Genotype, a name ('msmt'), compact text, a JSON file
    path, 'random:SEED', or a sequence of 12 names."""
    if isinstance(spec, Genotype):
        return spec
    if isinstance(spec, Path):
        return _load_file(spec)
    if not isinstance(spec, str):
        return Genotype(spec)
    text = spec.strip()
    if text.lower() in NAMED_GENOTYPES:
        return NAMED_GENOTYPES[text.lower()]
    if text.lower().startswith("random"):
        _, _, seed = text.partition(":")
        try:
            return random_genotype(int(seed))
        except ValueError:
            raise ValueError(
                f"random genotype spec must be 'random:SEED' with an integer seed, got {spec!r}"
            ) from None
    if text.lower().endswith(".json") or Path(text).is_file():
        return _load_file(Path(text))
    if "/" in text or "|" in text:
        return Genotype.parse(text)
    raise ValueError(
        f"unknown genotype {spec!r}: expected one of the names {sorted(NAMED_GENOTYPES)}, "
        f"compact text like {str(NAMED_GENOTYPES['msmt'])!r}, 'random:SEED' or a path to a JSON file"
    )


def _load_file(path: Path) -> Genotype:
    """A genotype JSON file; an undecodable or malformed file names itself and the line."""
    if not path.is_file():
        raise ValueError(f"genotype file {str(path)!r} does not exist")
    data = read_json(path, "genotype file")
    try:
        return Genotype.from_parsed(data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
