"""A retrained checkpoint as an MLflow model: the eval-mode network (768-d features), with a signature
`[-1, 3, H, W] float32 -> [-1, 768] float32`, and an input example, serialised as a torch.export program
(MLflow's `pt2` format: a traced graph with a dynamic batch, loaded without running any of this repository's
code), so that `mlflow.pytorch.load_model("models:/...")` needs torch alone.

Its python_function flavor (what `mlflow models serve` and `mlflow.pyfunc.load_model` use) loads the same
network through `msinet_serving.py`, shipped inside the model, which refuses batches outside the normalised
range with HTTP 400 (docs/deployment.md, Serving)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from trials.deploy.inference import load_inference_model
from trials.tracking import global_tracking_uri

MODEL_NAME = "model"  # the logged model's name when no trial names it
MODEL_URI_TAG = "msinet.model_uri"
NAME_FORBIDDEN = ("/", ":", ".", "%", '"', "'")  # MLflow refuses these in a logged model's name
SERVING_MODULE = Path(__file__).with_name("msinet_serving.py")


def logged_model_name(trial: str, genotype: str = "") -> str:
    """`retrain-842b1b18-exc-ag|none-exc|...` for trial `retrain/842b1b18`: what the runs table's Models
    column and the Models tab show, so that two retrains are told apart by more than "model". A genotype's
    groups are joined by `|` (`spaces.Genotype.parse` reads that too): MLflow allows no `/` in the name."""
    name = trial.replace("/", "-") + (f"-{genotype.replace('/', '|')}" if genotype else "")
    for character in NAME_FORBIDDEN:
        name = name.replace(character, "_")
    return name or MODEL_NAME


def signature(height: int, width: int, dim: int = 768):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, height, width))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim))]))


def log_checkpoint_model(tracking_uri: str, run_id: str, checkpoint: str | Path, name: str = MODEL_NAME,
                         step: int = 0) -> str:
    """Log ``checkpoint`` (a `spaces.save_checkpoint` file) as the run's MLflow model named ``name``, at the
    run's ``step`` (MLflow links the run's metrics of that step to the model); returns its URI.

    MLflow 3 links a logged model to a run only through the fluent API, so the run is made active here
    for the one call and the process's previous tracking URI is put back afterwards.
    """
    import mlflow
    import torch
    from mlflow.models import Model

    model, preprocessing = load_inference_model(checkpoint)
    # two images: torch.export would specialise a batch dimension traced at size 1
    example = np.zeros((2, 3, preprocessing.height, preprocessing.width), dtype=np.float32)
    with global_tracking_uri(tracking_uri), mlflow.start_run(run_id=run_id, log_system_metrics=False):
        info = Model.log(
            None, name=name, flavor=sys.modules[__name__], flavor_name="pytorch", step=step, pytorch_model=model,
            signature=signature(preprocessing.height, preprocessing.width), input_example=example,
            serialization_format="pt2",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
            metadata={"preprocessing": preprocessing.to_dict()},
            # MLflow's check loads the model back and predicts on the example, then only warns if that fails
            # (into a worker's log nobody reads): 2-3 s of every retrain trial for nothing. The tests load and
            # serve a logged model (tests/trials/test_registry.py).
            validate_serving_input=False)
    return info.model_uri


def save_model(path: str, mlflow_model, **kwargs) -> None:
    """The flavor `Model.log` saves with: `mlflow.pytorch.save_model`, then the python_function flavor pointed
    at `msinet_serving` (copied into the model's `code/`), which checks inputs before the same network."""
    import mlflow.pytorch
    from mlflow.models.model import MLMODEL_FILE_NAME

    kwargs.pop("validate_serving_input", None)  # Model.log's own option, passed on to every flavor
    mlflow.pytorch.save_model(path=path, mlflow_model=mlflow_model, code_paths=[str(SERVING_MODULE)], **kwargs)
    mlflow_model.flavors["python_function"]["loader_module"] = SERVING_MODULE.stem
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))
