"""Study files: load one YAML file, apply the scale and `--set` overrides, validate, resolve to a `Study`.

A study file is declarative (docs/studies.md): phases, each with a trial kind, fixed trial config,
an Optuna search space, a grid of values every one of which must run, genotypes taken from an earlier
phase, resources, early stopping. Every error names the file (or `--set`) and the field, so a typo never
turns into a silently different study.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from study_fields import (
    TRIAL_KEYS,
    StudyError,
    as_choices,
    as_distribution,
    as_int,
    as_mapping,
    as_resources,
    as_string,
    check_keys,
    did_you_mean,
    parse_configs,
    parse_early_stopping,
    parse_genotypes,
)

from trials.config import KINDS, SCALES, ConfigError, make_config, reported_metrics
from trials.text_files import TextFileError, read_text

STUDY_DIR = Path(__file__).resolve().parent / "studies"
STUDY_KEYS = ("description", "metric", "mode", "optimise_test_metric", "default_scale", "synthetic",
              "authors_pretrained", "phases", "scales")
PHASE_KEYS = ("kind", "description", "num_samples", "max_concurrent", "resources", "config", "space", "grid",
              "genotypes", "configs", "early_stopping", "max_failures", "keep_checkpoints")
# Settable on the command line but decided by the platform, never by a study file.
RUNTIME_TRIAL_KEYS = ("data_dir", "out", "kind", "scale")


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
    configs: dict[str, Any] | None = None  # a final phase: the best configs of an earlier phase, no hold-out
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
    # identities of a synthetic stand-in, per dataset, where the study needs others than study_data's defaults
    synthetic_ids: dict[str, int] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    # [[metric, mode], ...]: `metric: [val/mAP, latency/ms]` makes a multi-objective study; metric and mode
    # above are the first objective (ASHA's, the leaderboard's); empty in records older than this field.
    objectives: list[list[str]] = field(default_factory=list)
    # The weights file the authors start these runs from (`train.py --pretrained`); at full scale a launch
    # without `pretrained=` says it is not comparable with the paper's pretrained numbers.
    authors_pretrained: str | None = None

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def objectives(study: Study) -> list[tuple[str, str]]:
    """(metric, mode) of every objective; a record from before multi-objective studies has only the one."""
    return [tuple(o) for o in study.objectives] or [(study.metric, study.mode)]


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
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate.resolve()
        raise StudyError(f"--study {name}: no such study file ({candidate.resolve()}); known studies: "
                         f"{', '.join(available(study_dir)) or 'none'} (python platform/launch.py --list)")
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
    check_keys(document, STUDY_KEYS, where, "")
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
    try:
        study = _build(document, path.stem, where, scale)
    except StudyError as error:  # name the --set pair a bad value came from, not only the file
        culprit = next((f"{k}={v}" for k, v in (overrides or {}).items()
                        if k.split(".")[-1] in str(error) or str(v) in str(error)), None)
        raise StudyError(f"--set {culprit}: {error}" if culprit else str(error)) from None
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
        document = yaml.safe_load(read_text(path, "study file"))
    except TextFileError as error:
        raise StudyError(str(error)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        what = " ".join(str(p) for p in (getattr(error, "context", None), getattr(error, "problem", None)) if p)
        raise StudyError(f"{path}{line}: the study file is not valid YAML ({what or error})") from None
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
        + did_you_mean(key.split(".")[-1], TRIAL_KEYS + PHASE_KEYS + STUDY_KEYS))


def _build(document: dict[str, Any], name: str, where: str, scale: str) -> Study:
    description = document.get("description")
    if not isinstance(description, str) or not description.strip():
        raise StudyError(f"{where}: description: expected a one-line text saying what the study runs")
    optimise_test = document.get("optimise_test_metric", False)
    if not isinstance(optimise_test, bool):
        raise StudyError(f"{where}: optimise_test_metric: expected true or false, got {optimise_test!r}")
    objectives = _objectives(document.get("metric", "val/mAP"), document.get("mode", "max"), where, optimise_test)
    metric, mode = objectives[0]
    synthetic, synthetic_ids = _synthetic(document.get("synthetic", False), where)
    authors_pretrained = document.get("authors_pretrained")
    if authors_pretrained is not None:
        authors_pretrained = as_string(authors_pretrained, where, "authors_pretrained")
    raw_phases = document.get("phases")
    if not isinstance(raw_phases, dict) or not raw_phases:
        raise StudyError(f"{where}: phases: expected a mapping of phase name -> phase, e.g. search: {{kind: search}}")
    phases: list[Phase] = []
    for phase_name, raw in raw_phases.items():
        phases.append(_phase(str(phase_name), raw, f"{where}: phases.{phase_name}", scale,
                             {p.name: p.kind for p in phases}))
    for phase in phases:
        if phase.configs:
            continue  # a final phase has no hold-out and selects nothing
        cross = bool(phase.config.get("target_dataset") or phase.grid.get("target_dataset"))
        known = reported_metrics(phase.kind, cross)
        for objective, _ in objectives:
            if objective not in known:
                raise StudyError(f"{where}: metric: {objective!r} is not reported by the trials of phase "
                                 f"{phase.name!r} ({phase.kind}); they report {', '.join(sorted(known))}"
                                 + did_you_mean(objective, known))
    for phase in phases:
        _check_selection(phase, phases, objectives, where)
    return Study(name=name, path=where, description=description.strip(), metric=metric, mode=mode,
                 optimise_test_metric=optimise_test, scale=scale, synthetic=synthetic, phases=phases,
                 objectives=[list(o) for o in objectives], synthetic_ids=synthetic_ids,
                 authors_pretrained=authors_pretrained)


def _synthetic(value: Any, where: str) -> tuple[bool, dict[str, int]]:
    """`synthetic: true`, or `synthetic: {market1501: 64}` (true, with 64 identities in that stand-in)."""
    from study_data import SYNTHETIC_IDS

    if isinstance(value, bool):
        return value, {}
    if isinstance(value, dict) and value and all(
            name in SYNTHETIC_IDS and isinstance(ids, int) and not isinstance(ids, bool) and 8 <= ids <= 2000
            for name, ids in value.items()):
        return True, dict(value)
    raise StudyError(f"{where}: synthetic: expected true, false, or identities per built-in dataset (each 8 to "
                     f"2000, e.g. {{market1501: 64}}; datasets {', '.join(SYNTHETIC_IDS)}), got {value!r}")


def _objectives(metric: Any, mode: Any, where: str, optimise_test: bool) -> list[tuple[str, str]]:
    """`metric: val/mAP, mode: max` or lists of equal length (a multi-objective study)."""
    metrics = metric if isinstance(metric, list) else [metric]
    modes = mode if isinstance(mode, list) else [] if isinstance(metric, list) else [mode]
    if not metrics or len(modes) != len(metrics):
        raise StudyError(f"{where}: metric and mode: expected one metric and one mode, or two lists of the same "
                         f"length (metric: [val/mAP, latency/ms], mode: [max, min]), got {metric!r} and {mode!r}")
    metrics = [as_string(m, where, "metric") for m in metrics]
    if len(set(metrics)) != len(metrics):
        raise StudyError(f"{where}: metric: a metric is listed twice in {metrics}")
    for m in modes:
        if m not in ("max", "min"):
            raise StudyError(f"{where}: mode: expected 'max' or 'min', got {m!r}")
    for index, m in enumerate(metrics):
        test = m.startswith(("source/", "target/")) or (index == 0 and not m.startswith("val/"))
        if test and not optimise_test:
            raise StudyError(
                f"{where}: metric: {m!r} is not a validation metric. Studies optimise a `val/` metric "
                f"(held-out training ids), beside costs such as latency/ms; to optimise a test metric anyway, "
                f"say so with optimise_test_metric: true.")
    return list(zip(metrics, modes, strict=True))


def _check_selection(phase: Phase, phases: list[Phase], objectives: list[tuple[str, str]], where: str) -> None:
    """A Pareto selection needs two objectives; a budget names metrics the source phase reports."""
    for section in ("genotypes", "configs"):
        spec = getattr(phase, section)
        if not spec or not spec.get("from"):
            continue
        at = f"{where}: phases.{phase.name}.{section}"
        if spec["pareto"] and len(objectives) < 2:
            raise StudyError(f"{at}.pareto: a Pareto set needs two objectives or more, e.g. metric: [val/mAP, "
                             f"latency/ms] and mode: [max, min]; this study has one ({objectives[0][0]})")
        source = next(p for p in phases if p.name == spec["from"])
        known = reported_metrics(source.kind, bool(source.config.get("target_dataset")))
        for metric in spec["budget"]:
            if metric not in known:
                raise StudyError(f"{at}.budget.{metric}: not reported by the trials of phase {source.name!r}"
                                 + did_you_mean(metric, known))


def _phase(name: str, raw: Any, where: str, scale: str, earlier: dict[str, str]) -> Phase:
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: expected a mapping with keys {', '.join(PHASE_KEYS)}")
    check_keys(raw, PHASE_KEYS, where, "")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise StudyError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    phase = Phase(name=name, kind=kind, description=str(raw.get("description", "")))
    phase.num_samples = as_int(raw.get("num_samples", 1), f"{where}.num_samples", 1)
    if raw.get("max_concurrent") is not None:
        phase.max_concurrent = as_int(raw["max_concurrent"], f"{where}.max_concurrent", 1)
    phase.max_failures = as_int(raw.get("max_failures", 2), f"{where}.max_failures", 0)
    phase.keep_checkpoints = as_int(raw.get("keep_checkpoints", 2), f"{where}.keep_checkpoints", 1)
    phase.resources = as_resources(raw.get("resources") or {}, f"{where}.resources")
    phase.config = as_mapping(raw.get("config") or {}, f"{where}.config")
    for key in RUNTIME_TRIAL_KEYS:
        if key in phase.config:
            raise StudyError(f"{where}.config.{key}: set by the platform (--scale, --data-dir, run folders), "
                             f"not by a study")
    phase.config["scale"] = scale
    for key in ("latency_table", "genotype", "pretrained"):  # trials run in other folders: files made absolute
        value = phase.config.get(key)
        if isinstance(value, str) and (value.endswith(".json") or key == "pretrained"
                                       or (key == "genotype" and Path(value).expanduser().is_file())):
            phase.config[key] = str(Path(value).expanduser().resolve())
    for key in ("dataset", "target_dataset"):  # `dataset: [a, b]` -> "a+b": trial configs stay flat
        if isinstance(phase.config.get(key), list):
            phase.config[key] = "+".join(str(v) for v in phase.config[key])
    phase.space = {k: as_distribution(v, f"{where}.space.{k}") for k, v in as_mapping(raw.get("space") or {},
                                                                                   f"{where}.space").items()}
    phase.grid = {k: as_choices(v, f"{where}.grid.{k}") for k, v in as_mapping(raw.get("grid") or {},
                                                                          f"{where}.grid").items()}
    for key in set(phase.space) & set(phase.grid):
        raise StudyError(f"{where}: {key!r} is both in space and in grid; keep it in one")
    if raw.get("genotypes") is not None:
        phase.genotypes = parse_genotypes(raw["genotypes"], f"{where}.genotypes", kind, earlier)
        for section in ("config", "space", "grid"):
            if "genotype" in getattr(phase, section):
                raise StudyError(f"{where}.{section}.genotype: the phase takes its genotypes from `genotypes`; "
                                 f"remove one of the two")
    if raw.get("early_stopping") is not None:
        phase.early_stopping = parse_early_stopping(raw["early_stopping"], f"{where}.early_stopping")
    if raw.get("configs") is not None:
        phase.configs = parse_configs(raw["configs"], f"{where}.configs", kind, earlier)
        for section in ("space", "grid", "genotypes", "early_stopping"):
            if getattr(phase, section):
                raise StudyError(f"{where}.{section}: a final phase (configs) retrains chosen configurations "
                                 "as they are: it takes no search space, grid, genotypes or early stopping")
        if phase.config.get("val_fraction", 0) != 0:
            raise StudyError(f"{where}.config.val_fraction: a final phase trains on every training id; "
                             f"expected 0, got {phase.config['val_fraction']!r}")
        phase.config["val_fraction"] = 0.0
    if isinstance(phase.grid.get("dataset"), list):  # a grid value may list several sources too
        phase.grid["dataset"] = ["+".join(map(str, v)) if isinstance(v, list) else v for v in phase.grid["dataset"]]
    for section in ("space", "grid"):
        for key in getattr(phase, section):
            if key not in TRIAL_KEYS or key in RUNTIME_TRIAL_KEYS:
                raise StudyError(f"{where}.{section}.{key}: not a trial config key" + did_you_mean(key, TRIAL_KEYS))
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
