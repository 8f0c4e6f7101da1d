"""The fields of a study file, one parser each: every error names the file (or `--set`) and the field, with a
"did you mean" where a close name exists."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from typing import Any

from trials.config import TrialConfig

DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")
TRIAL_KEYS = tuple(f.name for f in dataclasses.fields(TrialConfig))
GENOTYPE_KEYS = ("from", "top_k", "group_by", "pareto", "budget", "random", "published")
CONFIGS_KEYS = ("from", "top_k", "group_by", "pareto", "budget")
EARLY_STOPPING_KEYS = ("grace_period", "reduction_factor")


class StudyError(ValueError):
    """A study that cannot run; the message names the file or `--set` and the field."""


def check_keys(mapping: dict, allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise StudyError(f"{where}: unknown field {prefix}{key!r}; expected one of {', '.join(allowed)}"
                             + did_you_mean(str(key), allowed))


def did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), 1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def as_string(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise StudyError(f"{where}: {name}: expected a text, got {value!r}")
    return value


def as_int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StudyError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def as_number(value: Any, where: str) -> float:
    """YAML 1.1 reads `1e-4` as text: accept it as a number here."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StudyError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise StudyError(f"{where}: expected a finite number, got {value!r}")
    return number


def as_mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StudyError(f"{where}: expected a mapping, got {value!r}")
    return copy.deepcopy(value)


def as_resources(raw: Any, where: str) -> dict[str, float]:
    raw = as_mapping(raw, where)
    check_keys(raw, ("cpu", "gpu"), where, "")
    cpu = as_number(raw.get("cpu", 1), f"{where}.cpu")
    gpu = as_number(raw.get("gpu", 0), f"{where}.gpu")
    if cpu <= 0 or gpu < 0:
        raise StudyError(f"{where}: expected cpu > 0 and gpu >= 0 (fractions allowed), got cpu={cpu}, gpu={gpu}")
    return {"cpu": cpu, "gpu": gpu}


def as_distribution(raw: Any, where: str) -> dict[str, list]:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DISTRIBUTIONS:
        raise StudyError(f"{where}: expected one of {{loguniform: [low, high]}}, {{uniform: [low, high]}}, "
                         f"{{int: [low, high]}} or {{choice: [a, b, ...]}}, got {raw!r}")
    (dist, values), = raw.items()
    if dist == "choice":
        return {dist: as_choices(values, f"{where}.choice")}
    if not isinstance(values, list) or len(values) != 2:
        raise StudyError(f"{where}.{dist}: expected [low, high], got {values!r}")
    low, high = (as_number(v, f"{where}.{dist}") for v in values)
    if not low < high or (dist == "loguniform" and low <= 0):
        raise StudyError(f"{where}.{dist}: expected low < high{' and low > 0' if dist == 'loguniform' else ''}, "
                         f"got [{low}, {high}]")
    if dist == "int":
        if not (low.is_integer() and high.is_integer()):
            raise StudyError(f"{where}.int: expected integer bounds, got [{low}, {high}]")
        return {dist: [int(low), int(high)]}
    return {dist: [low, high]}


def as_choices(values: Any, where: str) -> list:
    if not isinstance(values, list) or not values:
        raise StudyError(f"{where}: expected a non-empty list of values, got {values!r}")
    if len({repr(v) for v in values}) != len(values):
        raise StudyError(f"{where}: values repeat: {values!r}")
    return list(values)


def parse_configs(raw: Any, where: str, kind: str, earlier: dict[str, str]) -> dict[str, Any]:
    """The final, paper-comparable step: the top-k configurations of an earlier retrain phase by the study
    metric, retrained on every training id and tested once. A study whose point is a comparison keeps every
    side of it with `group_by`: a trial config key (sam_mode) or `group`, the genotype's origin."""
    if kind != "retrain":
        raise StudyError(f"{where}: only retrain phases take configs")
    raw = as_mapping(raw, where)
    check_keys(raw, CONFIGS_KEYS, where, "")
    source = raw.get("from")
    retrains = [n for n, k in earlier.items() if k == "retrain"]
    if source not in retrains:
        raise StudyError(f"{where}.from: expected an earlier retrain phase ({', '.join(retrains) or 'none yet'}), "
                         f"got {source!r}")
    group_by = raw.get("group_by")
    if group_by is not None and group_by not in (*TRIAL_KEYS, "group"):
        raise StudyError(f"{where}.group_by: expected a trial config key such as sam_mode, or group (where the "
                         f"genotype came from: tcm, classification, random, published), got {group_by!r}"
                         + did_you_mean(str(group_by), (*TRIAL_KEYS, "group")))
    return {"from": source, "top_k": as_int(raw.get("top_k", 1), f"{where}.top_k", 1), "group_by": group_by,
            **parse_selection(raw, where)}


def parse_selection(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """`pareto: true` takes every trial no other beats on all of the study's objectives instead of the top-k;
    `budget: {latency/ms: 30}` keeps only trials whose metric is at most the value (a latency budget)."""
    pareto = raw.get("pareto", False)
    if not isinstance(pareto, bool):
        raise StudyError(f"{where}.pareto: expected true or false, got {pareto!r}")
    budget = as_mapping(raw.get("budget") or {}, f"{where}.budget")
    for metric, limit in budget.items():
        budget[metric] = as_number(limit, f"{where}.budget.{metric}")
    return {"pareto": pareto, "budget": budget}


def parse_genotypes(raw: Any, where: str, kind: str, earlier: dict[str, str]) -> dict[str, Any]:
    if kind != "retrain":
        raise StudyError(f"{where}: only retrain phases take genotypes (search phases produce them)")
    raw = as_mapping(raw, where)
    check_keys(raw, GENOTYPE_KEYS, where, "")
    spec: dict[str, Any] = {"from": None, "top_k": 1, "group_by": None, "random": 0, "published": [],
                            **parse_selection(raw, where)}
    if raw.get("from") is not None:
        if raw["from"] not in earlier:
            raise StudyError(f"{where}.from: expected an earlier phase ({', '.join(earlier) or 'none yet'}), "
                             f"got {raw['from']!r}")
        spec["from"] = raw["from"]
    spec["top_k"] = as_int(raw.get("top_k", 1), f"{where}.top_k", 1)
    if raw.get("group_by") is not None:
        spec["group_by"] = raw["group_by"]
        if spec["group_by"] not in TRIAL_KEYS:
            raise StudyError(f"{where}.group_by: expected a trial config key such as supervision, "
                             f"got {spec['group_by']!r}")
    spec["random"] = as_int(raw.get("random", 0), f"{where}.random", 0)
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


def parse_early_stopping(raw: Any, where: str) -> dict[str, float]:
    raw = as_mapping(raw, where)
    check_keys(raw, EARLY_STOPPING_KEYS, where, "")
    grace = as_int(raw.get("grace_period", 1), f"{where}.grace_period", 1)
    factor = as_number(raw.get("reduction_factor", 2), f"{where}.reduction_factor")
    if factor <= 1:
        raise StudyError(f"{where}.reduction_factor: expected a number > 1, got {factor}")
    return {"grace_period": grace, "reduction_factor": factor}
