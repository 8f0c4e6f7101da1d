"""What a phase will cost on the GPU, estimated before it runs: GPU-hours and wall time.

Training images per trial (the dataset's training images, less the validation hold-out, the search's share of
them on its train side, times the epochs) over the training-step throughput measured on the device, kept per
device in benchmarks/results/ (the JSON files of benchmarks/gpu_retrain.py and benchmarks/gpu_throughput.py;
the slowest measured run of a device counts). Trials packed on one GPU are taken to share its throughput, so
GPU-hours do not depend on the packing and wall time does. Evaluation, decoding and start-up are not counted,
and early stopping can only end trials sooner: the figures are an upper bound of the training steps' cost.

A device without a figure gets "unknown device: no estimate"; the figure of a measured device is then shown
for scale, saying which device and date it comes from.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from trials.config import TrialConfig

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
# Training images of the built-in datasets as published (MSMT17: train + val lists, as the trials use them).
TRAIN_IMAGES = {"market1501": 12936, "msmt17": 32621, "msmt17_v1": 32621, "msmt17_v2": 32621, "veri": 37778,
                "vehicleid": 113346}
MEASURED_SIZE = (256, 128)  # the benchmarks' image size; other sizes scale the rate by their pixel count
# Share of the (hold-out reduced) training images one search epoch passes over: its train side.
SEARCH_SHARE = {"tcm": 0.4, "classification": 0.5}


def measured_rates(folder: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Device name -> {"retrain": images/s, "search": images/s, "date", "runs"}: the slowest run per device."""
    rates: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        environment = result.get("environment") or {}
        if environment.get("device") != "cuda" or not environment.get("name"):
            continue
        found = {kind: _rate(result, kind) for kind in ("retrain", "search")}
        entry = rates.setdefault(environment["name"], {"runs": 0, "date": ""})
        entry["runs"] += 1
        date = re.search(r"\d{4}-\d{2}-\d{2}", path.name)
        entry["date"] = max(entry["date"], date.group(0) if date else "")
        for kind, rate in found.items():
            if rate:
                entry[kind] = min(entry.get(kind, rate), rate)
    return rates


def _rate(result: dict[str, Any], kind: str) -> float | None:
    """fp32 training-step images/s with the inputs on the device, in either benchmark's JSON."""
    on_device = (result.get(f"{kind}_on_device") or {}).get("fp32") or {}
    if on_device.get("images_per_s"):
        return float(on_device["images_per_s"])
    by_variant = result.get(f"{kind}_images_per_s") or {}
    value = by_variant.get("device") or by_variant.get("pil_fp32")
    return float(value) if value else None


def images_per_trial(cfg: TrialConfig) -> float | None:
    """Training images one trial steps through (None: a dataset whose size is not known here)."""
    sizes = [TRAIN_IMAGES.get(name) for name in cfg.dataset.split("+")]
    if not all(sizes):
        return None
    share = 1.0 - cfg.val_fraction
    if cfg.kind == "search":
        share *= SEARCH_SHARE.get(cfg.supervision, 0.5)
    per_epoch = sum(sizes) * share
    if cfg.iters_per_epoch:
        per_epoch = min(per_epoch, cfg.iters_per_epoch * cfg.ids_per_batch * cfg.instances)
    return per_epoch * cfg.epochs


def estimate(cfg: TrialConfig, trials: int, concurrent: int, gpu: float, device: str,
             rates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """GPU-hours and wall hours of a phase on `device` (a GPU model such as "A10G"), or why there is none."""
    if gpu <= 0:
        return {"note": "CPU trials: no GPU estimate"}
    images = images_per_trial(cfg)
    if images is None:
        return {"note": f"dataset {cfg.dataset!r} of unknown size: no estimate"}
    height, width = cfg.image_size
    pixels = (height * width) / (MEASURED_SIZE[0] * MEASURED_SIZE[1])
    kind = cfg.kind
    match = next((name for name in rates if device and device.lower() in name.lower()), None)
    reference = match or next(iter(sorted(rates)), None)
    unknown = f"unknown device {device or '(a GPU of unknown model)'}: no estimate"
    if reference is None or kind not in rates[reference]:
        return {"note": f"{unknown} (no GPU figures in benchmarks/results)"}
    rate = rates[reference][kind] / pixels
    gpu_hours = trials * images / rate / 3600
    trial_hours = images / (rate * min(gpu, 1.0)) / 3600  # packed trials share the GPU's rate
    waves = math.ceil(trials / max(concurrent, 1))
    out = {"device": reference, "date": rates[reference]["date"], "images_per_s": rate,
           "images_per_trial": images, "gpu_hours": gpu_hours, "wall_hours": waves * trial_hours}
    if match is None:
        out["note"] = unknown
    return out


def describe(cost: dict[str, Any]) -> str:
    """One line for the plan."""
    if "gpu_hours" not in cost:
        return cost["note"]
    figures = (f"at most {cost['gpu_hours']:.1f} GPU-hours, {cost['wall_hours']:.1f} h wall "
               f"({cost['images_per_trial']:,.0f} training images per trial at {cost['images_per_s']:,.0f} images/s "
               f"per GPU: {cost['device']}, benchmarks/results {cost['date']})")
    if cost.get("note"):
        return f"{cost['note']}; for scale, on an {cost['device']}: {figures}"
    return figures
