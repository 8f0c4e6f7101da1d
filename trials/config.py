"""The config of a search or retrain trial: one flat dataclass, validated once, at the boundary.

Ray Tune hands trials a plain dict; CLIs and study files produce dicts too. `make_config` turns such a
dict into a `TrialConfig`, filling defaults from the MSINet recipe (docs/method.md) and the
`scale` preset, and rejects unknown keys and bad values with an error that names the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("search", "retrain")
SCALES = ("full", "smoke")
SAM_MODES = ("none", "pos", "neg", "pos_neg")
ERASINGS = ("authors", "torchvision")
HALVING_ORDERS = ("dataset", "sorted")
DATA_PATHS = ("loader", "resident")
SUPERVISIONS = ("tcm", "classification")
VEHICLE_DATASETS = ("veri", "vehicleid")
LATENCY_TABLES = Path(__file__).resolve().parent.parent / "spaces" / "latency_tables"


class ConfigError(ValueError):
    """A trial config value that cannot be used; the message names the field."""


@dataclass
class TrialConfig:
    """Every knob of a trial. Defaults are the paper's; `scale: smoke` shrinks them for CPU minutes."""

    kind: str = "retrain"
    scale: str = "full"
    # data
    dataset: str = "market1501"
    data_dir: str = "data"
    target_dataset: str | None = None
    vehicleid_test_size: int = 2400  # the authors' default; papers report 800, 1600 and 2400
    vehicleid_draws: int = 10  # random gallery draws averaged (the authors score one draw: 1)
    height: int = 256
    width: int | None = None  # None: height / 2 for persons, height for vehicles
    ids_per_batch: int = 16
    instances: int = 4
    pk_replacement: bool = True  # ids with fewer than K images are drawn with replacement; off: an error
    workers: int | None = None  # loader processes; None: from the trial's CPU allocation
    iters_per_epoch: int | None = None  # None: one pass over the training images
    val_fraction: float = 0.1  # share of training ids held out for `val/` metrics; 0 disables
    erasing: str = "authors"  # in-domain random erasing: the authors' variant, or "torchvision"'s
    crop_padding: int | None = None  # pad before the random crop; None: 10 px at height 256, scaled with it
    halving_order: str = "dataset"  # images of an id before TCM halves them: "dataset" order or "sorted"
    data_path: str = "loader"  # "loader": PIL decoding in workers; "resident": decoded once, augmented on device
    resident_cache: str | None = None  # folder keeping decoded splits for the next trial on the node
    # architecture
    genotype: str = "msmt"
    supervision: str = "tcm"
    sam_mode: str = "none"
    sam_ratio: float = 2.0
    pretrained: str | None = None
    # weight optimiser and schedule
    epochs: int = 350
    lr: float = 0.065
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 10
    warmup_factor: float = 0.01
    milestones: list[int] = field(default_factory=lambda: [150, 225, 300])
    lr_gamma: float = 0.1
    # architecture optimiser (search)
    arch_lr: float = 2e-3
    arch_weight_decay: float = 1e-3
    arch_milestones: list[int] = field(default_factory=lambda: [150, 225, 350])
    # True (the authors' flow): the valid loss's gradient reaches the weights too, which then descend
    # grad(L_train + L_valid); False: textbook first-order DARTS, the valid gradient steps alpha alone.
    valid_grad_to_weights: bool = True
    # hardware-aware search: λ of the penalty λ · E[latency] / (latency of the uniform mixture) added to the
    # architecture loss (0: the authors' search), and the cost table (a kept table's name or a .json path;
    # unset: the kept CPU table at 256x128, or 256x256 for vehicles). Trials report `latency/ms` from it.
    latency_weight: float = 0.0
    latency_table: str | None = None
    # losses
    label_smoothing: float = 0.1
    triplet_margin: float = 0.3
    memory_temperature: float = 0.05
    memory_momentum: float = 0.2
    # evaluation
    eval_interval: int = 10
    test_interval: int = 0  # >0: also evaluate the test splits every N epochs (logged, never selected on)
    rerank: bool = False
    # runtime
    seed: int = 0
    device: str = "auto"
    # Both off by default: on an H200, bf16 autocast was no faster than fp32 (TF32 convolutions) for this
    # small network and channels_last was 14-22 % slower (benchmarks/README.md, GPU rows). bf16 gradients
    # of an untrained network disagree with fp32's, but so do fp32 gradients of an input perturbed by 0.3 %
    # (benchmarks/bf16_sensitivity.py): whether bf16 trains as well is for a training run on a GPU.
    amp: bool = False
    channels_last: bool = False
    compile: bool = False  # torch.compile the training forward (inductor; CUDA graphs on CUDA)
    compile_backend: str = "inductor"
    out: str | None = None

    @property
    def vehicle(self) -> bool:
        """Built-in vehicle layouts; a list folder's dataset.json or a loader's `kind` (trials.data.names)."""
        from trials.dataset_names import BUILTIN, source_names  # names only: no torch

        try:
            parts = source_names(self.dataset)
        except ValueError:  # an unusable name: its loader reports it
            return False
        if all(part in BUILTIN for part in parts):  # built-in layouts: known by name (mixing them is refused)
            return any(part in VEHICLE_DATASETS for part in parts)
        from trials.data.names import dataset_kind  # reads a list folder's dataset.json

        try:
            return dataset_kind(self.dataset, self.data_dir) == "vehicle"
        except ValueError:  # an unusable dataset: its loader reports it
            return False

    @property
    def cross_domain(self) -> bool:
        return self.target_dataset is not None

    @property
    def image_size(self) -> tuple[int, int]:
        return self.height, self.width or (self.height if self.vehicle else self.height // 2)

    @property
    def latency_table_path(self) -> Path:
        """The cost table's file (spaces/latency_tables holds the kept ones; `python -m spaces.latency` makes more)."""
        name = self.latency_table or ("cpu-256x256-b1" if self.vehicle else "cpu-256x128-b1")
        return Path(name).expanduser() if name.endswith(".json") else LATENCY_TABLES / f"{name}.json"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What differs from the retrain recipe when searching (docs/method.md, Search with TCM).
SEARCH_DEFAULTS: dict[str, Any] = {"lr": 0.025, "milestones": [150, 225, 300], "genotype": "supernet"}

# Small enough for a retrain in well under a minute on 2 CPU cores, on synthetic data. Training from
# scratch on tens of ids with 32-image batches needs more epochs and a lower lr than the paper's 0.065
# (benchmarks/smoke_retrain.py: with this preset, 16 synthetic training ids, source mAP 0.154 -> 0.425 with
# torchvision's random erasing; with the authors' erasing, the default since 2026-12-01, 0.25 after 25 epochs
# and 0.33 after 40: their larger boxes slow learning at 64x32. With 10 epochs or fewer the trained network
# does not beat the untrained one).
SMOKE_PRESET: dict[str, Any] = {
    "height": 64,
    "epochs": 30,
    "lr": 0.035,
    "ids_per_batch": 8,
    "instances": 4,
    "warmup_epochs": 2,
    "milestones": [24],
    "arch_milestones": [24],
    "eval_interval": 5,
    "val_fraction": 0.2,
    "workers": 0,
}

# A smoke search's TCM train side holds a dozen ids: in 8 x 4 batches that is one batch per epoch, whose
# architecture step the authors' skip rule (none at iteration 0) drops, so alpha never moved. 4 x 2 batches
# give 4 iterations, 3 architecture steps, per epoch.
SMOKE_SEARCH_PRESET: dict[str, Any] = {"ids_per_batch": 4, "instances": 2}

_FIELDS = {f.name: f for f in dataclasses.fields(TrialConfig)}
SCORES = ("mAP", "rank1", "rank5", "rank10", "mINP")


def reported_metrics(kind: str, cross_domain: bool) -> set[str]:
    """The numeric metrics a trial of `kind` reports (what a study may optimise or stop on)."""
    keys = {"epoch", "lr", "epoch_seconds", *(f"{p}/{s}" for p in ("val", "source") for s in SCORES)}
    if cross_domain:
        keys |= {f"target/{s}" for s in SCORES}
    keys |= {"latency/ms"}  # the cost table's prediction for the trial's genotype, ms per image
    if kind == "search":
        return keys | {"loss/weight", "loss/architecture", "arch_lr", "alpha/entropy", "latency/expected_ms",
                       "loss/latency"}
    return keys | {*(f"latency/b{b}_{unit}" for b in (1, 64) for unit in ("ms_per_image", "images_per_second")),
                   "loss", "loss/ce_global", "loss/triplet_global", "loss/ce_part", "loss/triplet_part", "loss/sam",
                   "images_per_second", "params", "params_no_classifier", "macs"}


def make_config(kind: str, values: dict[str, Any] | None = None) -> TrialConfig:
    """Defaults, then the `scale` preset, then `values`; unknown keys and bad values raise ConfigError."""
    if kind not in KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    values = {k: v for k, v in (values or {}).items() if v is not None}
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        hints = [f"{k} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(k, _FIELDS, 1)) else k
                 for k in unknown]
        raise ConfigError(f"unknown trial config key(s): {', '.join(hints)}; known keys: {', '.join(_FIELDS)}")
    scale = values.get("scale", "full")
    if scale not in SCALES:
        raise ConfigError(f"scale: expected one of {', '.join(SCALES)}, got {scale!r}")
    merged: dict[str, Any] = {"kind": kind}
    if kind == "search":
        merged.update(SEARCH_DEFAULTS)
    if scale == "smoke":
        merged.update(SMOKE_PRESET)
        if kind == "search":
            merged.update(SMOKE_SEARCH_PRESET)
    merged.update(values)
    merged["kind"] = kind
    config = TrialConfig(**{k: _coerce(k, v) for k, v in merged.items()})
    config.data_dir = os.path.expanduser(config.data_dir)
    _validate(config)
    return config


def _coerce(name: str, value: Any) -> Any:
    """Accept strings for numbers and lists (CLI, `--set key=value`), reject everything else that misfits."""
    kind = str(_FIELDS[name].type)
    if name in ("dataset", "target_dataset") and isinstance(value, list | tuple):
        value = "+".join(str(v) for v in value)  # a study file's `dataset: [a, b]`: one flat string
    try:
        if kind.startswith("list"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split()]
            return [int(v) for v in value]
        if value is None:
            return None
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return value.lower() in {"true", "1", "yes"}
            return bool(value)
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        return str(value)
    except (TypeError, ValueError):
        expected = "a finite float" if kind.startswith("float") else kind
        raise ConfigError(f"{name}: expected {expected}, got {value!r}") from None


def _validate(c: TrialConfig) -> None:
    def need(ok: bool, name: str, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{name}: expected {expected}, got {getattr(c, name)!r}")

    from trials.dataset_names import source_names  # names only: no torch, nothing read

    for name in ("dataset", "target_dataset"):
        try:
            parts = source_names(getattr(c, name)) if getattr(c, name) is not None else []
        except ValueError as error:
            raise ConfigError(f"{name}: {error}") from None
        need(name == "dataset" or len(parts) <= 1, name, "one dataset (several sources train; one target tests)")
    need(c.sam_mode in SAM_MODES, "sam_mode", f"one of {', '.join(SAM_MODES)}")
    need(c.supervision in SUPERVISIONS, "supervision", f"one of {', '.join(SUPERVISIONS)}")
    need(c.erasing in ERASINGS, "erasing", f"one of {', '.join(ERASINGS)}")
    need(c.halving_order in HALVING_ORDERS, "halving_order", f"one of {', '.join(HALVING_ORDERS)}")
    need(c.data_path in DATA_PATHS, "data_path", f"one of {', '.join(DATA_PATHS)}")
    need(c.data_path == "loader" or c.erasing == "authors" or c.cross_domain, "erasing",
         "'authors' with data_path resident (the device path implements the authors' erasing)")
    need(c.crop_padding is None or c.crop_padding >= 0, "crop_padding", "an integer >= 0 (or unset)")
    need(c.sam_mode == "none" or c.kind == "retrain", "sam_mode", "'none' for search trials")
    for name in ("epochs", "height", "ids_per_batch", "instances", "eval_interval", "vehicleid_draws"):
        need(getattr(c, name) >= 1, name, "an integer >= 1")
    need(c.width is None or c.width >= 1, "width", "an integer >= 1")
    need(c.ids_per_batch >= 2, "ids_per_batch", "at least 2 (the triplet loss needs negatives)")
    need(c.workers is None or c.workers >= 0, "workers", "an integer >= 0")
    need(c.iters_per_epoch is None or c.iters_per_epoch >= 1, "iters_per_epoch", "an integer >= 1")
    need(0.0 <= c.val_fraction < 0.9, "val_fraction", "a fraction in [0, 0.9)")
    need(c.vehicleid_test_size in (800, 1600, 2400), "vehicleid_test_size", "800, 1600 or 2400")
    for name in ("lr", "arch_lr", "memory_temperature"):
        need(getattr(c, name) > 0, name, "a positive number")
    kept = ", ".join(sorted(p.stem for p in LATENCY_TABLES.glob("*.json")))
    # unset: a kept table chosen by the dataset's kind, which reading a list folder's kind would import torch for
    need(c.latency_table is None or c.latency_table_path.is_file(), "latency_table",
         f"a kept table ({kept}) or an existing table .json (python -m spaces.latency --out TABLE.json measures one)")
    for name in ("weight_decay", "arch_weight_decay", "sam_ratio", "latency_weight", "triplet_margin", "test_interval",
                 "warmup_epochs"):
        need(getattr(c, name) >= 0, name, "a number >= 0")
    for name in ("label_smoothing", "memory_momentum", "momentum", "warmup_factor", "lr_gamma"):
        need(0.0 <= getattr(c, name) <= 1.0, name, "a number in [0, 1]")
    need(c.device == "auto" or c.device == "cpu" or c.device.startswith("cuda"), "device",
         "'auto', 'cpu' or 'cuda[:N]'")
