"""Optional MLflow logging of one trial (docs/studies.md, What is recorded), as a session hook.

The driver calls `ensure_store(uri, study)` once, creates the launch's parent run, and gives each trial an
`MLflowHook`; the trial's session calls the hook on every report. Only the `MlflowClient` API is used (no
fluent `mlflow.start_run`, no global state), so the hook works the same in the driver and in Ray workers.

* first call: find the trial's run (tag `msinet.trial` == run name in the experiment, so a restarted or
  resumed trial keeps logging into the same run) or create it under the parent (`mlflow.parentRunId`); log
  the flattened config as params (once), and the environment (device, torch / ray / mlflow, host) as tags;
* every call: numeric metrics at `step=epoch` in one `log_batch` (epochs the run already holds, repeated by a
  trial resumed from its last checkpoint, are not logged twice; `val/...` only at the epochs it was
  evaluated, `val/epoch`, although the trials carry it to every report for the schedulers), the genotype as
  the `genotype` tag;
* the final report (the last epoch, or one that holds `source/mAP`), or `finish()` from the driver when a
  scheduler stopped the trial early: genotype.json, checkpoint/model.pt, the alpha history (search
  trials), the rank lists and activation maps (retrains), cmc.png and metrics.json as artefacts, then the
  run is marked FINISHED. A retrain's network is logged as an MLflow model named after the trial and its
  genotype (`retrain-<trial id>-<genotype>`), before the final scores, which are then logged linked to it,
  each with the dataset it was measured on: the logged model's page lists them and its datasets;
* `fail(message)`: the `error` tag and status FAILED (the platform calls it when a trial dies).

Also, once per run: the datasets the config names as MLflow dataset inputs (`trials/data/record.py`), MLflow's
system metrics (CPU, memory, GPU when present; `trials/system_metrics.py`) while the trial reports, and for a
retrain the final checkpoint as an MLflow model with a signature (`trials/deploy/mlflow_model.py`), its URI
in the tag `msinet.model_uri`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import numbers
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from trials import system_metrics

TRIAL_TAG = "msinet.trial"
PARENT_TAG = "mlflow.parentRunId"
FAILURE_TAG = "msinet.failure"  # `kind: message` of a failure that repeats (trials/runtime/failures.py)
NODES_TAG = "msinet.nodes"  # the Ray node of every start of the trial, comma-separated, in order
RETRIES_TAG = "msinet.retries"
FINAL_KEY = "source/mAP"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
MAX_TAG_VALUE = 8000  # MLflow's limit on a tag value
MAX_PARAM_KEY = 250
BATCH_METRICS = 1000  # MLflow's limits per log_batch call
BATCH_PARAMS = 100
# Text a trial reports that runs are filtered and compared by: metric key -> run tag.
TEXT_TAGS = {"genotype": "genotype", "latency/table": "msinet.latency_table",
             "latency/measured_at": "msinet.latency_measured_at", "latency/measured_on": "msinet.latency_measured_on",
             "latency/shared": "msinet.latency_shared"}
ROOT_ARTEFACTS = ("genotype.json", "alpha_history.csv", "alpha_history.npy", "rank_lists.png", "activation_maps.png",
                  "rank_lists.json")
CHECKPOINT_ARTEFACTS = ("model.pt",)
# What a logged model lists as its own metrics (with the dataset of each score): the scores and the costs.
MODEL_METRIC_PREFIXES = ("val/", "source/", "target/", "latency/")
MODEL_METRICS = ("params", "params_no_classifier", "macs")
SCORE_PREFIXES = ("val/", "source/", "target/")  # measured on a dataset, which the logged model names


def ensure_store(tracking_uri: str, experiment_name: str, artifact_location: str | None = None) -> str:
    """The experiment's id, creating it (and, for a fresh SQLite file, the store's tables) when missing.

    Call it once in the driver before any trial starts. Many processes opening a fresh SQLite store at once
    race on creating its tables (two launches into a new run folder did: `duplicate column name`), so the
    first opening happens under a file lock. For a `sqlite:///` store without an explicit
    `artifact_location` the artefacts go to `artifacts/<experiment>` beside the database file (MLflow's
    default would be `./mlruns` under whatever folder the driver runs in).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with store_lock(tracking_uri):
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        if artifact_location is None:
            artifact_location = _default_artifact_location(tracking_uri, experiment_name)
        try:
            return client.create_experiment(experiment_name, artifact_location=artifact_location)
        except MlflowException:  # another process created it between the look-up and the creation
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a SQLite store (MLflow's or Optuna's) while it is created or migrated;
    other stores need none."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri[len("sqlite:///"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def global_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to `tracking_uri` for one call, then put back: what MLflow 3's
    fluent model logging, and its registry resolving a `models:/<id>` source, read instead of the client's."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


class MLflowHook:
    """A session hook logging one trial into its own MLflow run (module docstring)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str | None, run_name: str,
                 params: Mapping[str, Any], tags: Mapping[str, Any] | None = None):
        self.tracking_uri = tracking_uri
        self.experiment_id = str(experiment_id)
        self.parent_run_id = parent_run_id
        self.run_name = run_name
        self.params = dict(params)
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self.logged_epoch = 0  # the last epoch the run already holds, when it was found rather than created
        self.datasets: dict[str, tuple[str, str]] = {}  # context (training, target) -> (name, digest)
        self._client = None
        self._monitor = None

    # The hook may be built in the driver and shipped to a Ray worker: client and monitor are never pickled.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_monitor": None}

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def __call__(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        from mlflow.entities import RunTag

        run_id = self.open()
        if self._monitor is None:  # reports come from the trial's own process: watch its machine
            self._monitor = system_metrics.start(self.tracking_uri, run_id)
        step = int(metrics.get("epoch") or 0)
        final = FINAL_KEY in metrics or step >= int(self.params.get("epochs") or 10**9)
        # The model first, at this step, so that this step's scores are logged linked to it (with their
        # datasets) instead of being copied to it by MLflow without them.
        model_id = self._log_final(run_id, metrics, checkpoint_dir, step) if final else None
        # A trial resumed from its last checkpoint repeats the epochs after it; the run already holds them.
        repeated = 0 < step <= self.logged_epoch
        values = [] if repeated else self._metrics(metrics, step, model_id)
        tags = [RunTag(tag, _clip(str(metrics[key]), MAX_TAG_VALUE)) for key, tag in TEXT_TAGS.items()
                if key in metrics]
        for start in range(0, max(len(values), 1), BATCH_METRICS):
            self.client.log_batch(run_id, metrics=values[start:start + BATCH_METRICS],
                                  tags=tags if start == 0 else [])
        if final:
            self.stop_watching()
            self.client.set_terminated(run_id, "FINISHED")

    def finish(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """The final artefacts, then FINISHED: from the driver, when a scheduler stopped the trial early."""
        run_id = self.open()
        self.stop_watching()
        self._log_final(run_id, metrics, checkpoint_dir, int(metrics.get("epoch") or 0))
        self.client.set_terminated(run_id, "FINISHED")

    def _metrics(self, metrics: dict[str, Any], step: int, model_id: str | None) -> list:
        """The report's numbers at `step`. `val/...` only at the epochs it was evaluated (`val/epoch`): the
        trials carry it between evaluations for the schedulers, and a chart of carried values would show
        steps where nothing was measured. With a model: the scores linked to it, each with its dataset."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        evaluated = metrics.get("val/epoch") == step
        out = []
        for key, value in numeric_metrics(metrics).items():
            if key.startswith("val/") and not evaluated:
                continue
            linked = model_id is not None and (key.startswith(MODEL_METRIC_PREFIXES) or key in MODEL_METRICS)
            scored = linked and key.startswith(SCORE_PREFIXES)  # costs (params, macs, latency) have no dataset
            name, digest = self.datasets.get(_metric_context(key), (None, None)) if scored else (None, None)
            out.append(Metric(key, value, stamp, step, dataset_name=name, dataset_digest=digest,
                              model_id=model_id if linked else None))
        return out

    def open(self) -> str:
        """The trial's run id: found by its `msinet.trial` tag, or created; params and environment logged."""
        if self.run_id is not None:
            return self.run_id
        run = self._find()
        if run is None:
            tags = {TRIAL_TAG: self.run_name, **{k: str(v) for k, v in self.tags.items()}}
            if self.parent_run_id:
                tags[PARENT_TAG] = self.parent_run_id
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.run_name)
            self._drop_retry_twins(run)
        else:
            self.logged_epoch = int(run.data.metrics.get("epoch", 0))
            if run.info.status != "RUNNING":  # a resumed trial: the run is live again
                self.client.update_run(run.info.run_id, status="RUNNING")
            extra = {k: str(v) for k, v in self.tags.items()}
            if extra:
                self._log_tags(run.info.run_id, extra)
        self.run_id = run.info.run_id
        self._log_params(run)
        self._log_tags(self.run_id, environment_tags())
        inputs = run.inputs.dataset_inputs if run.inputs else []
        self.datasets = ({_context(i): (i.dataset.name, i.dataset.digest) for i in inputs} if inputs
                         else self._log_datasets())
        return self.run_id

    def _drop_retry_twins(self, run) -> None:
        """A create the server did commit but whose answer timed out is sent again by MLflow's HTTP retries:
        two runs for one trial, from one request (same start time). Ours is the one answered; the twin goes."""
        for other in self._matching():
            if other.info.run_id != run.info.run_id and other.info.start_time == run.info.start_time:
                self.client.delete_run(other.info.run_id)

    def record_start(self, node: str) -> None:
        """Count a start of the trial on its run: `msinet.nodes` lists the Ray node of every start in order,
        `msinet.retries` how many starts followed the first (a retry after a failure, or a --resume)."""
        run_id = self.open()
        earlier = self.client.get_run(run_id).data.tags.get(NODES_TAG, "")
        nodes = [n for n in earlier.split(",") if n] + [node]
        self._log_tags(run_id, {NODES_TAG: ",".join(nodes), RETRIES_TAG: str(len(nodes) - 1)})

    def find_run_id(self) -> str | None:
        """The trial's run id when the run exists (nothing is created or logged)."""
        run = self._find()
        return run.info.run_id if run is not None else None

    def stop_watching(self) -> None:
        """Stop the system metrics thread, logging its last point: a trial the scheduler stopped ends by a
        SystemExit out of its report, and with `reuse_actors` its process goes on to the next trial."""
        self._monitor = system_metrics.stop(self._monitor)

    def mark_failure(self, message: str) -> None:
        """Remember on the run a failure that repeats (`kind: message`), so a restart of the trial fails at once."""
        self.client.set_tag(self.open(), FAILURE_TAG, _clip(str(message), MAX_TAG_VALUE))

    def failure(self) -> str | None:
        """The failure that repeats an earlier attempt of this trial recorded, if any."""
        run = self._find()
        return run.data.tags.get(FAILURE_TAG) if run is not None else None

    def fail(self, message: str) -> None:
        """Tag the run with the error and mark it FAILED (creating it if the trial died before reporting)."""
        run_id = self.open()
        self.stop_watching()
        self.client.set_tag(run_id, "error", _clip(str(message), MAX_TAG_VALUE))
        self.client.set_terminated(run_id, "FAILED")

    def _find(self):
        runs = self._matching()
        return runs[0] if runs else None

    def _matching(self) -> list:
        """This trial's runs in this launch, oldest first."""
        name = self.run_name
        if "'" not in name:
            condition = f"= '{name}'"
        elif '"' not in name:
            condition = f'= "{name}"'
        else:  # both quote characters: a wider LIKE, narrowed to the exact name below
            condition = "LIKE '{}'".format(name.replace("'", "_").replace('"', "_"))
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{TRIAL_TAG}` {condition}",
                                       order_by=["attributes.start_time ASC"], max_results=1000)
        return [run for run in runs if run.data.tags.get(TRIAL_TAG) == name
                and run.data.tags.get(PARENT_TAG) == (self.parent_run_id or None)]  # one launch, one run per trial

    def _log_params(self, run) -> None:
        from mlflow.entities import Param

        logged = run.data.params
        missing = [Param(k, v) for k, v in flatten_params(self.params).items() if k not in logged]
        for start in range(0, len(missing), BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=missing[start:start + BATCH_PARAMS])

    def _log_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, _clip(v, MAX_TAG_VALUE)) for k, v in tags.items()])

    def _log_final(self, run_id: str, metrics: dict[str, Any], checkpoint_dir: Path | None, step: int) -> str | None:
        """The artefacts, and a retrain's network as an MLflow model logged at `step`; returns its id."""
        model_id = None
        if checkpoint_dir is not None:
            checkpoint_dir = Path(checkpoint_dir)
            for name in ROOT_ARTEFACTS:
                if (checkpoint_dir / name).is_file():
                    self.client.log_artifact(run_id, str(checkpoint_dir / name))
            for name in CHECKPOINT_ARTEFACTS:
                if (checkpoint_dir / name).is_file():
                    self.client.log_artifact(run_id, str(checkpoint_dir / name), "checkpoint")
            if (checkpoint_dir / "model.pt").is_file():  # a retrain's network: also an MLflow model
                model_id = self._log_model(run_id, checkpoint_dir / "model.pt", str(metrics.get("genotype", "")),
                                           step)
        with tempfile.TemporaryDirectory(prefix="msinet-mlflow-") as tmp:
            curves = {prefix: metrics[f"{prefix}/cmc"] for prefix in ("source", "target")
                      if isinstance(metrics.get(f"{prefix}/cmc"), list | tuple) and metrics[f"{prefix}/cmc"]}
            if curves:
                from trials.evaluation.cmc_plot import plot_cmc  # matplotlib: only where a trial draws

                plot_cmc(curves, Path(tmp) / "cmc.png")
                self.client.log_artifact(run_id, str(Path(tmp) / "cmc.png"))
            (Path(tmp) / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
            self.client.log_artifact(run_id, str(Path(tmp) / "metrics.json"))
        return model_id

    def _log_model(self, run_id: str, checkpoint: Path, genotype: str, step: int) -> str | None:
        from trials.deploy.mlflow_model import MODEL_URI_TAG, log_checkpoint_model, logged_model_name

        try:
            uri = log_checkpoint_model(self.tracking_uri, run_id, checkpoint,
                                       name=logged_model_name(self.run_name, genotype), step=step)
        except Exception as error:  # noqa: BLE001 - the trial's results are logged; say what is missing
            self.client.set_tag(run_id, "msinet.model_error", _clip(f"{type(error).__name__}: {error}",
                                                                     MAX_TAG_VALUE))
            print(f"warning: {self.run_name}: the MLflow model was not logged: {error}", file=sys.stderr)
            return None
        self.client.set_tag(run_id, MODEL_URI_TAG, uri)
        return uri.rsplit("/", 1)[-1]  # models:/<model id>

    def _log_datasets(self) -> dict[str, tuple[str, str]]:
        """The config's datasets as MLflow dataset inputs (context `training` or `target`); returns
        context -> (name, digest)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        from trials.data.record import trial_datasets

        try:
            records = trial_datasets(self.params)
        except Exception as error:  # noqa: BLE001 - the trial itself reports unreadable data
            print(f"warning: {self.run_name}: datasets not recorded: {error}", file=sys.stderr)
            return {}
        inputs = [DatasetInput(Dataset(name=r["name"], digest=r["digest"], source_type="local",
                                       source=json.dumps({"uri": r["root"]}),
                                       profile=json.dumps({k: v for k, v in r.items() if k not in ("root",)})),
                               tags=[InputTag("mlflow.data.context", context)]) for context, r in records]
        if inputs:
            self.client.log_inputs(self.run_id, datasets=inputs)
        return {context: (r["name"], r["digest"]) for context, r in records}


def _context(dataset_input) -> str:
    return next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"), "training")


def _metric_context(key: str) -> str:
    """The dataset a score was measured on: the target's for `target/...`; the training dataset's otherwise
    (`val/...` on its held-out identities, `source/...` on its test split)."""
    return "target" if key.startswith("target/") else "training"


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The report's numbers (bools as 0/1); text, lists and other values are not metrics."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, numbers.Real):
            out[key] = float(value)
    return out


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}, "m": [1, 2]}` -> `{"a.b": "1", "m": "1,2"}`; over-long values cut with a note."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
            continue
        if isinstance(value, list | tuple | set | frozenset):
            text = ",".join(str(v) for v in (sorted(value, key=str) if isinstance(value, set | frozenset) else value))
        else:
            text = str(value)
        flat[name[:MAX_PARAM_KEY]] = _clip(text, MAX_PARAM_VALUE)
    return flat


def environment_tags() -> dict[str, str]:
    """Where the trial ran: device, library versions, host."""
    from importlib import metadata

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "absent"

    try:
        import torch

        device = torch.cuda.get_device_name(torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
        torch_version = torch.__version__
    except Exception:  # noqa: BLE001 - an environment tag must never stop a trial
        device, torch_version = "unknown", version("torch")
    return {"env.device": device, "env.torch": torch_version, "env.ray": version("ray"),
            "env.mlflow": version("mlflow"), "env.hostname": socket.gethostname()}


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"... [truncated, {len(text)} chars]"
    return text[:limit - len(note)] + note


def _default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri[len("sqlite:///"):])
    if not database.is_absolute():
        database = database.resolve()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment_name)
    return (database.parent / "artifacts" / safe).as_uri()
