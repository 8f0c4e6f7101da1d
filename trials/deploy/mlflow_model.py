"""A retrained checkpoint as an MLflow model: the eval-mode network (768-d features), with a signature
`[-1, 3, H, W] float32 -> [-1, 768] float32`, and an input example, serialised as a torch.export program
(MLflow's `pt2` format: a traced graph with a dynamic batch, loaded without running any of this repository's
code), so that `mlflow.pytorch.load_model("models:/...")` needs torch alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trials.deploy.inference import load_inference_model

MODEL_NAME = "model"  # the logged model's name inside its run
MODEL_URI_TAG = "msinet.model_uri"


def signature(height: int, width: int, dim: int = 768):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, height, width))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim))]))


def log_checkpoint_model(tracking_uri: str, run_id: str, checkpoint: str | Path) -> str:
    """Log ``checkpoint`` (a `spaces.save_checkpoint` file) as the run's MLflow model; returns its URI.

    MLflow 3 links a logged model to a run only through the fluent API, so the run is made active here
    for the one call and the process's previous tracking URI is put back afterwards.
    """
    import mlflow
    import mlflow.pytorch
    import torch

    model, preprocessing = load_inference_model(checkpoint)
    # two images: torch.export would specialise a batch dimension traced at size 1
    example = np.zeros((2, 3, preprocessing.height, preprocessing.width), dtype=np.float32)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=run_id, log_system_metrics=False):
            info = mlflow.pytorch.log_model(
                model, name=MODEL_NAME, signature=signature(preprocessing.height, preprocessing.width),
                input_example=example, serialization_format="pt2",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
                metadata={"preprocessing": preprocessing.to_dict()})
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri
