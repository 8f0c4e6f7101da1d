"""Study files: load one YAML file, apply the scale and `--set` overrides, validate, resolve to a `Study`.

A study file is declarative (docs/studies.md): phases, each with a trial kind, fixed trial config,
an Optuna search space, a grid of values every one of which must run, genotypes taken from an earlier
phase, resources, early stopping. Every error names the file (or `--set`) and the field, so a typo never
turns into a silently different study.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trials.config import KINDS, SCALES, ConfigError, TrialConfig, make_config

STUDY_DIR = Path(__file__).resolve().parent / "studies"
DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")
TRIAL_KEYS = tuple(f.name for f in dataclasses.fields(TrialConfig))
STUDY_KEYS = ("description", "metric", "mode", "optimise_test_metric", "default_scale", "synthetic", "phases",
              "scales")
PHASE_KEYS = ("kind", "description", "num_samples", "max_concurrent", "resources", "config", "space", "grid",
              "genotypes", "early_stopping", "max_failures", "keep_checkpoints")
GENOTYPE_KEYS = ("from", "top_k", "group_by", "random", "published")
EARLY_STOPPING_KEYS = ("grace_period", "reduction_factor")
# Settable on the command line but decided by the platform, never by a study file.
RUNTIME_TRIAL_KEYS = ("data_dir", "out", "kind", "scale")


class StudyError(ValueError):
    """A study that cannot run; the message names the file or `--set` and the field."""


@dataclass
class Phase:
    name: str
    kind: str
    description: str = ""
    num_samples: int = 1
    max_concurrent: int | None = None
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    config: dict[str, Any] = field(default_factory=dict)
    space: dict[str, dict[str, list]] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    genotypes: dict[str, Any] | None = None
    early_stopping: dict[str, float] | None = None
    max_failures: int = 2
    keep_checkpoints: int = 2


@dataclass
class Study:
    name: str
    path: str
    description: str
    metric: str
    mode: str
    optimise_test_metric: bool
    scale: str
    synthetic: bool
    phases: list[Phase]
    overrides: dict[str, Any] = field(default_factory=dict)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def trial_values(phase: Phase, genotypes: list[str]) -> dict[str, list]:
    """The grid: every value listed must run at least once (genotypes of a retrain phase included)."""
    grid = dict(phase.grid)
    if genotypes:
        grid["genotype"] = list(genotypes)
    return grid


def sample_count(phase: Phase, genotypes: list[str]) -> int:
    """Trials in the phase: num_samples, and never fewer than the grid's combinations."""
    combinations = math.prod(len(v) for v in trial_values(phase, genotypes).values())
    if phase.space:
        return max(phase.num_samples, combinations)
    return combinations * phase.num_samples


def study_path(name: str, study_dir: Path = STUDY_DIR) -> Path:
    """A study name (a file in platform/studies) or a path to a study file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate.resolve()
    path = study_dir / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(available(study_dir)) or "none"
        raise StudyError(f"unknown study {name!r}: no file {path}. Known studies: {known} "
                         f"(python platform/launch.py --list), or pass the path of a study .yaml file.")
    return path


def available(study_dir: Path = STUDY_DIR) -> list[str]:
    return sorted(p.stem for p in study_dir.glob("*.yaml"))


def describe(study_dir: Path = STUDY_DIR) -> list[tuple[str, str]]:
    """(name, one-line description) of every study file; a broken file says so instead of hiding."""
    rows = []
    for name in available(study_dir):
        try:
            rows.append((name, str(_read(study_dir / f"{name}.yaml")["description"]).strip().splitlines()[0]))
        except (StudyError, KeyError, IndexError) as error:
            rows.append((name, f"(cannot be read: {error})"))
    return rows


def load_study(name: str, scale: str | None = None, overrides: dict[str, Any] | None = None,
               study_dir: Path = STUDY_DIR) -> Study:
    """Read, apply `scales.<scale>` then `overrides` (the `--set` pairs), validate; raises StudyError."""
    path = study_path(name, study_dir)
    document = _read(path)
    where = str(path)
    _check_keys(document, STUDY_KEYS, where, "")
    scale = scale or document.get("default_scale", "full")
    if scale not in SCALES:
        raise StudyError(f"{where}: default_scale: expected one of {', '.join(SCALES)}, got {scale!r}")
    scales = document.get("scales") or {}
    if not isinstance(scales, dict) or not set(scales) <= set(SCALES):
        raise StudyError(f"{where}: scales: expected a mapping with keys among {', '.join(SCALES)}")
    for key, value in (scales.get(scale) or {}).items():
        _apply(document, key, value, f"{where}: scales.{scale}")
    for key, value in (overrides or {}).items():
        _apply(document, key, value, "--set")
    study = _build(document, path.stem, where, scale)
    study.overrides = dict(overrides or {})
    return study


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["lr=0.05", "search.num_samples=4"]` -> values parsed as YAML scalars or lists."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set search.num_samples=4")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as error:
            raise StudyError(f"--set {pair!r}: the value is not valid YAML ({error})") from None
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not valid YAML: {error}") from None
    except OSError as error:
        raise StudyError(f"{path}: cannot be read: {error}") from None
    if not isinstance(document, dict):
        raise StudyError(f"{path}: expected a mapping with keys {', '.join(STUDY_KEYS)}, got {type(document).__name__}")
    return document


def _apply(document: dict[str, Any], key: str, value: Any, where: str) -> None:
    """One override: a study key, PHASE.FIELD[.SUB], or a bare trial config key for every phase."""
    phases = document.get("phases") or {}
    parts = key.split(".")
    if parts[0] in STUDY_KEYS and len(parts) == 1 and parts[0] not in ("phases", "scales"):
        document[parts[0]] = value
        return
    if parts[0] in phases and len(parts) >= 2:
        phase = phases[parts[0]]
        if parts[1] not in PHASE_KEYS or parts[1] == "kind":
            raise StudyError(f"{where}: {key}: {parts[1]!r} is not a settable phase field; "
                             f"expected one of {', '.join(k for k in PHASE_KEYS if k != 'kind')}")
        target = phase
        for part in parts[1:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
        if parts[1] == "config" and len(parts) == 3:
            (phase.get("space") or {}).pop(parts[2], None)  # a fixed value wins over a searched one
        return
    if len(parts) == 1 and key in TRIAL_KEYS and key not in RUNTIME_TRIAL_KEYS:
        for phase in phases.values():
            phase.setdefault("config", {})[key] = value
            (phase.get("space") or {}).pop(key, None)
        return
    fields = ", ".join(k for k in STUDY_KEYS if k not in ("phases", "scales"))
    raise StudyError(
        f"{where}: unknown key {key!r}. Expected a study field ({fields}), "
        f"a trial config key applied to every phase (e.g. lr, epochs, seed), or PHASE.FIELD with PHASE one of "
        f"{', '.join(phases) or 'the study phases'} (e.g. {next(iter(phases), 'search')}.num_samples=4)."
        + _hint(key.split(".")[-1], TRIAL_KEYS + PHASE_KEYS + STUDY_KEYS))


def _build(document: dict[str, Any], name: str, where: str, scale: str) -> Study:
    description = document.get("description")
    if not isinstance(description, str) or not description.strip():
        raise StudyError(f"{where}: description: expected a one-line text saying what the study runs")
    metric = _string(document.get("metric", "val/mAP"), where, "metric")
    mode = document.get("mode", "max")
    if mode not in ("max", "min"):
        raise StudyError(f"{where}: mode: expected 'max' or 'min', got {mode!r}")
    optimise_test = document.get("optimise_test_metric", False)
    if not isinstance(optimise_test, bool):
        raise StudyError(f"{where}: optimise_test_metric: expected true or false, got {optimise_test!r}")
    if not metric.startswith("val/") and not optimise_test:
        raise StudyError(
            f"{where}: metric: {metric!r} is not a validation metric. Studies optimise a `val/` metric "
            f"(held-out training ids); to optimise a test metric anyway, say so with optimise_test_metric: true.")
    synthetic = document.get("synthetic", False)
    if not isinstance(synthetic, bool):
        raise StudyError(f"{where}: synthetic: expected true or false, got {synthetic!r}")
    raw_phases = document.get("phases")
    if not isinstance(raw_phases, dict) or not raw_phases:
        raise StudyError(f"{where}: phases: expected a mapping of phase name -> phase, e.g. search: {{kind: search}}")
    phases: list[Phase] = []
    for phase_name, raw in raw_phases.items():
        phases.append(_phase(str(phase_name), raw, f"{where}: phases.{phase_name}", scale, [p.name for p in phases]))
    return Study(name=name, path=where, description=description.strip(), metric=metric, mode=mode,
                 optimise_test_metric=optimise_test, scale=scale, synthetic=synthetic, phases=phases)


def _phase(name: str, raw: Any, where: str, scale: str, earlier: list[str]) -> Phase:
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: expected a mapping with keys {', '.join(PHASE_KEYS)}")
    _check_keys(raw, PHASE_KEYS, where, "")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise StudyError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    phase = Phase(name=name, kind=kind, description=str(raw.get("description", "")))
    phase.num_samples = _int(raw.get("num_samples", 1), f"{where}.num_samples", 1)
    if raw.get("max_concurrent") is not None:
        phase.max_concurrent = _int(raw["max_concurrent"], f"{where}.max_concurrent", 1)
    phase.max_failures = _int(raw.get("max_failures", 2), f"{where}.max_failures", 0)
    phase.keep_checkpoints = _int(raw.get("keep_checkpoints", 2), f"{where}.keep_checkpoints", 1)
    phase.resources = _resources(raw.get("resources") or {}, f"{where}.resources")
    phase.config = _mapping(raw.get("config") or {}, f"{where}.config")
    for key in RUNTIME_TRIAL_KEYS:
        if key in phase.config:
            raise StudyError(f"{where}.config.{key}: set by the platform (--scale, --data-dir, run folders), "
                             f"not by a study")
    phase.config["scale"] = scale
    phase.space = {k: _distribution(v, f"{where}.space.{k}") for k, v in _mapping(raw.get("space") or {},
                                                                                   f"{where}.space").items()}
    phase.grid = {k: _choices(v, f"{where}.grid.{k}") for k, v in _mapping(raw.get("grid") or {},
                                                                          f"{where}.grid").items()}
    for key in set(phase.space) & set(phase.grid):
        raise StudyError(f"{where}: {key!r} is both in space and in grid; keep it in one")
    if raw.get("genotypes") is not None:
        phase.genotypes = _genotypes(raw["genotypes"], f"{where}.genotypes", kind, earlier)
        for section in ("config", "space", "grid"):
            if "genotype" in getattr(phase, section):
                raise StudyError(f"{where}.{section}.genotype: the phase takes its genotypes from `genotypes`; "
                                 f"remove one of the two")
    if raw.get("early_stopping") is not None:
        phase.early_stopping = _early_stopping(raw["early_stopping"], f"{where}.early_stopping")
    for section in ("space", "grid"):
        for key in getattr(phase, section):
            if key not in TRIAL_KEYS or key in RUNTIME_TRIAL_KEYS:
                raise StudyError(f"{where}.{section}.{key}: not a trial config key" + _hint(key, TRIAL_KEYS))
    _check_trial_config(phase, where)
    return phase


def _check_trial_config(phase: Phase, where: str) -> None:
    """Every value the phase can give a trial must pass the trial's own validation: fail now, not on a worker."""
    samples = [{}]
    for key, spec in phase.space.items():
        (dist, bounds), = spec.items()
        values = bounds if dist == "choice" else [bounds[0], bounds[1]]
        samples = [{**s, key: v} for s in samples for v in values[:2]] if len(samples) < 64 else samples
    for key, values in phase.grid.items():
        samples = [{**s, key: v} for s in samples for v in values] if len(samples) < 64 else samples
    for sample in samples:
        values = {**phase.config, **sample}
        try:
            make_config(phase.kind, values)
        except ConfigError as error:
            section = "config"
            field_name = str(error).split(":", 1)[0]
            if field_name in phase.space:
                section = "space"
            elif field_name in phase.grid:
                section = "grid"
            raise StudyError(f"{where}.{section}: {error}") from None


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise StudyError(f"{where}: unknown field {prefix}{key!r}; expected one of {', '.join(allowed)}"
                             + _hint(str(key), allowed))


def _hint(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), 1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _string(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise StudyError(f"{where}: {name}: expected a text, got {value!r}")
    return value


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StudyError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    """YAML 1.1 reads `1e-4` as text: accept it as a number here."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StudyError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise StudyError(f"{where}: expected a finite number, got {value!r}")
    return number


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StudyError(f"{where}: expected a mapping, got {value!r}")
    return copy.deepcopy(value)


def _resources(raw: Any, where: str) -> dict[str, float]:
    raw = _mapping(raw, where)
    _check_keys(raw, ("cpu", "gpu"), where, "")
    cpu = _number(raw.get("cpu", 1), f"{where}.cpu")
    gpu = _number(raw.get("gpu", 0), f"{where}.gpu")
    if cpu <= 0 or gpu < 0:
        raise StudyError(f"{where}: expected cpu > 0 and gpu >= 0 (fractions allowed), got cpu={cpu}, gpu={gpu}")
    return {"cpu": cpu, "gpu": gpu}


def _distribution(raw: Any, where: str) -> dict[str, list]:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DISTRIBUTIONS:
        raise StudyError(f"{where}: expected one of {{loguniform: [low, high]}}, {{uniform: [low, high]}}, "
                         f"{{int: [low, high]}} or {{choice: [a, b, ...]}}, got {raw!r}")
    (dist, values), = raw.items()
    if dist == "choice":
        return {dist: _choices(values, f"{where}.choice")}
    if not isinstance(values, list) or len(values) != 2:
        raise StudyError(f"{where}.{dist}: expected [low, high], got {values!r}")
    low, high = (_number(v, f"{where}.{dist}") for v in values)
    if not low < high or (dist == "loguniform" and low <= 0):
        raise StudyError(f"{where}.{dist}: expected low < high{' and low > 0' if dist == 'loguniform' else ''}, "
                         f"got [{low}, {high}]")
    if dist == "int":
        if not (low.is_integer() and high.is_integer()):
            raise StudyError(f"{where}.int: expected integer bounds, got [{low}, {high}]")
        return {dist: [int(low), int(high)]}
    return {dist: [low, high]}


def _choices(values: Any, where: str) -> list:
    if not isinstance(values, list) or not values:
        raise StudyError(f"{where}: expected a non-empty list of values, got {values!r}")
    if len({repr(v) for v in values}) != len(values):
        raise StudyError(f"{where}: values repeat: {values!r}")
    return list(values)


def _genotypes(raw: Any, where: str, kind: str, earlier: list[str]) -> dict[str, Any]:
    if kind != "retrain":
        raise StudyError(f"{where}: only retrain phases take genotypes (search phases produce them)")
    raw = _mapping(raw, where)
    _check_keys(raw, GENOTYPE_KEYS, where, "")
    spec: dict[str, Any] = {"from": None, "top_k": 1, "group_by": None, "random": 0, "published": []}
    if raw.get("from") is not None:
        if raw["from"] not in earlier:
            raise StudyError(f"{where}.from: expected an earlier phase ({', '.join(earlier) or 'none yet'}), "
                             f"got {raw['from']!r}")
        spec["from"] = raw["from"]
    spec["top_k"] = _int(raw.get("top_k", 1), f"{where}.top_k", 1)
    if raw.get("group_by") is not None:
        spec["group_by"] = raw["group_by"]
        if spec["group_by"] not in TRIAL_KEYS:
            raise StudyError(f"{where}.group_by: expected a trial config key such as supervision, "
                             f"got {spec['group_by']!r}")
    spec["random"] = _int(raw.get("random", 0), f"{where}.random", 0)
    published = raw.get("published") or []
    if not isinstance(published, list):
        raise StudyError(f"{where}.published: expected a list of genotype names, e.g. [msmt]")
    from spaces import NAMED_GENOTYPES

    for genotype in published:
        if genotype not in NAMED_GENOTYPES:
            raise StudyError(f"{where}.published: unknown genotype {genotype!r}; known: {', '.join(NAMED_GENOTYPES)}")
    spec["published"] = list(published)
    if spec["from"] is None and not spec["random"] and not spec["published"]:
        raise StudyError(f"{where}: names no genotypes: give from (a search phase), random or published")
    return spec


def _early_stopping(raw: Any, where: str) -> dict[str, float]:
    raw = _mapping(raw, where)
    _check_keys(raw, EARLY_STOPPING_KEYS, where, "")
    grace = _int(raw.get("grace_period", 1), f"{where}.grace_period", 1)
    factor = _number(raw.get("reduction_factor", 2), f"{where}.reduction_factor")
    if factor <= 1:
        raise StudyError(f"{where}.reduction_factor: expected a number > 1, got {factor}")
    return {"grace_period": grace, "reduction_factor": factor}
