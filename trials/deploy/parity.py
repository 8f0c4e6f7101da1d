"""Does an exported graph compute what the PyTorch model computes? Feature by feature, on random inputs and
on real images: max |Δ| <= 1e-4 and cosine >= 0.9999 for every feature, else the check fails and names the
worst input. An export that returns one output for every image, or applies normalisation twice, fails it.

|Δ| is measured in units of the feature's largest component when that exceeds 1: pre-BN features of a
trained network reach 1e6 and more, where float32 itself rounds by more than 1e-4 (its relative precision
is 6e-8). For unit-length or small features it is the plain absolute difference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trials.data.images import read_image
from trials.deploy.formats import Runner
from trials.deploy.inference import Preprocessing

MAX_ABS = 1e-4
MIN_COSINE = 0.9999
RANDOM_BATCHES = (1, 5)  # two batch sizes: the batch dimension must really be dynamic


def feature_gaps(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (max |Δ| in units of max(1, the largest |reference| component), max |Δ| itself, cosine);
    two zero vectors have cosine 1, one zero vector cosine 0."""
    reference, candidate = reference.astype(np.float64), candidate.astype(np.float64)
    max_abs = np.abs(reference - candidate).max(axis=1)
    scaled = max_abs / np.maximum(1.0, np.abs(reference).max(axis=1))
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    dots = (reference * candidate).sum(axis=1)
    both_zero = (np.linalg.norm(reference, axis=1) == 0) & (np.linalg.norm(candidate, axis=1) == 0)
    cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1.0, 0.0))
    return scaled, max_abs, cosine


def _batches(preprocessing: Preprocessing, images: Sequence[Path], seed: int, batch_size: int):
    generator = torch.Generator().manual_seed(seed)
    for size in RANDOM_BATCHES:
        batch = torch.randn(size, 3, preprocessing.height, preprocessing.width, generator=generator)
        yield [f"random input {i + 1} of a batch of {size}" for i in range(size)], batch
    transform = preprocessing.transform()
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        yield [str(p) for p in chunk], torch.stack([transform(read_image(str(p))) for p in chunk])


def check_parity(model: torch.nn.Module, runner: Runner, preprocessing: Preprocessing,
                 images: Sequence[Path] = (), seed: int = 0, batch_size: int = 16) -> dict[str, Any]:
    """Run both on the same inputs; returns the figures, the worst input and ``passed``."""
    model = model.eval()
    worst: dict[str, Any] = {"input": None, "max_delta": 0.0, "max_abs": 0.0, "cosine": 1.0, "score": -1.0}
    max_delta, max_abs, min_cosine, count, problem = 0.0, 0.0, 1.0, 0, None
    for names, batch in _batches(preprocessing, list(images), seed, batch_size):
        with torch.no_grad():
            reference = model(batch).numpy()
        candidate = np.asarray(runner(batch.numpy()))
        if candidate.shape != reference.shape:
            problem = (f"the exported graph returned shape {list(candidate.shape)} for a batch of {len(names)}, "
                       f"the model {list(reference.shape)}")
            worst = {"input": names[0], "max_delta": float("inf"), "max_abs": float("inf"), "cosine": 0.0,
                     "score": float("inf")}
            break
        gaps, raw, cosines = feature_gaps(reference, candidate)
        gaps = np.where(np.isfinite(gaps), gaps, np.inf)
        cosines = np.where(np.isfinite(cosines), cosines, -1.0)
        # how far past its tolerance each feature is; > 1 fails
        scores = np.maximum(gaps / MAX_ABS, (1.0 - cosines) / (1.0 - MIN_COSINE))
        row = int(np.argmax(scores))
        if scores[row] > worst["score"]:
            worst = {"input": names[row], "max_delta": float(gaps[row]), "max_abs": float(raw[row]),
                     "cosine": float(cosines[row]), "score": float(scores[row])}
        max_delta, min_cosine = max(max_delta, float(gaps.max())), min(min_cosine, float(cosines.min()))
        max_abs = max(max_abs, float(raw.max()))
        count += len(names)
    passed = problem is None and max_delta <= MAX_ABS and min_cosine >= MIN_COSINE
    return {"passed": passed, "max_delta": max_delta, "max_abs": max_abs, "min_cosine": min_cosine,
            "features_compared": count,
            "real_images": len(images), "tolerance": {"max_delta": MAX_ABS, "min_cosine": MIN_COSINE},
            "worst": worst, "problem": problem}


def describe(result: dict[str, Any]) -> str:
    """One line for the user: the figures, and on failure the worst input."""
    worst = result["worst"]
    figures = (f"max |Δ| {result['max_delta']:.3g} (absolute {result['max_abs']:.3g}), min cosine "
               f"{result['min_cosine']:.6f} over "
               f"{result['features_compared']} features ({result['real_images']} real images)")
    if result["passed"]:
        return f"parity passed: {figures}"
    reason = result["problem"] or (f"worst input {worst['input']}: max |Δ| {worst['max_delta']:.3g}, cosine "
                                   f"{worst['cosine']:.6f}")
    return (f"parity FAILED (tolerance max |Δ| <= {MAX_ABS:g} per feature, in units of its largest component "
            f"when above 1, cosine >= {MIN_COSINE}): {reason}; "
            f"overall {figures}")
