"""How an MSINet MLflow model is served: MLflow's own pytorch model, refusing what is not a normalised image.

This file travels inside every logged model (its `code/` folder) as the `loader_module` of the model's
python_function flavor, so `mlflow models serve`, `mlflow.pyfunc.load_model` and MLflow's serving-input
check all load the network through it; `mlflow.pytorch.load_model` still returns the bare network. It
imports numpy and MLflow only, nothing of this repository.

The network takes images already resized, scaled to [0, 1] and normalised per channel, (x - mean) / std
(the model's `preprocessing` metadata, the `preprocessing.json` of an export). A batch of raw 0-255 pixels
has the right shape and type and would return confident, meaningless features; a batch whose values leave
[(0 - mean) / std, (1 - mean) / std] in any channel is refused with MLflow's INVALID_PARAMETER_VALUE, which
the scoring server answers with HTTP 400 and the message below.
"""

from __future__ import annotations

import os

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TOLERANCE = 1e-3  # float32 rounding of a pixel at 0 or 255, in normalised units
CHANNELS = "RGB"


def _load_pyfunc(path: str, model_config=None):
    """MLflow's pyfunc loader hook: `path` is the model's `data` folder."""
    import mlflow.pytorch
    from mlflow.models import Model

    preprocessing = (Model.load(os.path.dirname(os.path.abspath(path))).metadata or {}).get("preprocessing") or {}
    return NormalisedInputs(mlflow.pytorch._load_pyfunc(path, model_config), preprocessing)


def input_range(preprocessing: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the values a pixel of 0 and of 255 become after the preprocessing."""
    mean = np.asarray(preprocessing.get("mean", IMAGENET_MEAN), dtype=np.float64)
    std = np.asarray(preprocessing.get("std", IMAGENET_STD), dtype=np.float64)
    return (0.0 - mean) / std, (1.0 - mean) / std


def range_problem(batch: np.ndarray, low: np.ndarray, high: np.ndarray) -> str | None:
    """Why an N x 3 x H x W batch is not normalised images, or None."""
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[1] != len(low) or batch.size == 0:
        return None  # the signature check reports shapes
    if not np.isfinite(batch).all():
        return "the batch holds NaN or infinite values"
    seen_low, seen_high = batch.min(axis=(0, 2, 3)), batch.max(axis=(0, 2, 3))
    bad = [c for c in range(len(low)) if seen_low[c] < low[c] - TOLERANCE or seen_high[c] > high[c] + TOLERANCE]
    if not bad:
        return None
    spans = "; ".join(f"channel {CHANNELS[c] if c < len(CHANNELS) else c} spans {seen_low[c]:.3f} to "
                      f"{seen_high[c]:.3f}, expected {low[c]:.3f} to {high[c]:.3f}" for c in bad)
    raw = " (raw 0-255 pixels?)" if max(seen_high) > 10 else ""
    return (f"inputs outside the normalised range{raw}: {spans}. Send images resized to the model's size, "
            "scaled to [0, 1], minus mean, divided by std, as the model's preprocessing (preprocessing.json) "
            "says; `python -m trials.deploy.client` does it")


class NormalisedInputs:
    """The pytorch pyfunc model behind an input check (module docstring)."""

    def __init__(self, model, preprocessing: dict):
        self.model = model
        self.low, self.high = input_range(preprocessing)

    def predict(self, data, params=None):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        problem = range_problem(data, self.low, self.high) if isinstance(data, np.ndarray) else None
        if problem:
            raise MlflowException(problem, error_code=INVALID_PARAMETER_VALUE)
        return self.model.predict(data, params=params)

    def get_raw_model(self):
        return self.model.get_raw_model()
