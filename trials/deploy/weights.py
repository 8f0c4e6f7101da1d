"""`--weights` as a file or as a model or run in MLflow: `models:/msinet-STUDY@champion` (the registered
champion's checkpoint), `runs:/RUN_ID/checkpoint/model.pt`, or any MLflow artefact URI. The file is fetched
through the tracking server (or the store), wherever its artefacts live (S3 included), into a temporary
folder that lasts as long as the command needs it. MLflow is imported only for such URIs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHECKPOINT = "checkpoint/model.pt"  # what every retrain run keeps beside its MLflow model
SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "s3://")


def is_mlflow_uri(weights: str | None) -> bool:
    return bool(weights) and str(weights).startswith(SCHEMES)


@contextlib.contextmanager
def local_weights(weights: str, tracking_uri: str | None = None) -> Iterator[str]:
    """A local path for `weights`: the file itself, or the checkpoint downloaded from MLflow (ValueError, naming
    the URI, when it cannot be fetched)."""
    if not is_mlflow_uri(weights):
        yield weights
        return
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    with tempfile.TemporaryDirectory(prefix="msinet-weights-") as folder:
        try:
            if weights.startswith("models:/"):
                run_id = _model_run(MlflowClient(uri), weights[len("models:/"):])
                path = MlflowClient(uri).download_artifacts(run_id, CHECKPOINT, folder)
            else:
                path = mlflow.artifacts.download_artifacts(artifact_uri=weights, dst_path=folder, tracking_uri=uri)
        except (MlflowException, OSError) as error:
            raise ValueError(f"--weights {weights}: cannot fetch it from MLflow at {uri or 'the default store'} "
                             f"({str(error).splitlines()[0]}); give --tracking-uri (or MLFLOW_TRACKING_URI)") from None
        if Path(path).is_dir():
            path = str(Path(path) / "model.pt")
        yield path


def _model_run(client, name: str) -> str:
    """The run of a registered model version: NAME@ALIAS, NAME/VERSION, or NAME (its latest version)."""
    if "@" in name:
        model, alias = name.split("@", 1)
        return client.get_model_version_by_alias(model, alias).run_id
    if "/" in name:
        model, version = name.rsplit("/", 1)
        return client.get_model_version(model, version).run_id
    versions = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"], max_results=1)
    if not versions:
        from mlflow.exceptions import MlflowException

        raise MlflowException(f"registered model {name!r} has no versions")
    return versions[0].run_id
