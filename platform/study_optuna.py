"""The Optuna side of a phase: what Ray's OptunaSearch records, made true to what happened to each trial.

* A trial that a scheduler (ASHA) stopped before its planned epochs is PRUNED, with its intermediate values;
  Ray tells Optuna COMPLETE with the early value, which TPE would take for a finished trial.
* A trial that failed is FAIL; Ray tells Optuna COMPLETE with the last value it reported, if any.
* A trial whose launch was interrupted (Ctrl-C, or a driver that died) is FAIL: the driver marks it so when
  it stops, `--resume` or the next report when it was killed (analysis.launch_state.settle). The restored search still
  holds the Optuna trial it had given the Tune trial; when that Tune trial continues, it gets a new Optuna
  trial with the same parameters, which receives its results from then on.
* Intermediate values are the objective at the epochs it was evaluated (`val/epoch`), at step = epoch, the
  last one included (Ray reports none for the result a scheduler stops on, and every result otherwise,
  carried values too). The objectives carry their metric names (`val/mAP`, not "Objective 0"), and each
  trial the user attributes that tie it to the rest of the platform (`annotate`: genotype with its decision
  margins, MLflow run id and link, Tune trial id, stopped early or not).
"""

from __future__ import annotations

import re
import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from trials.tracking import store_lock

RUNNING = optuna.trial.TrialState.RUNNING


def open_storage(uri: str) -> optuna.storages.RDBStorage:
    """Optuna's storage, created if new: under a lock for a SQLite file (a fresh file opened by two drivers at
    once races), and in a PostgreSQL database with the schema its URI names (`options=-csearch_path=NAME`,
    as launch.py gives Optuna a schema of its own beside MLflow's tables) created first."""
    schema = search_path(uri)
    if schema:
        import sqlalchemy

        engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        finally:
            engine.dispose()
    with store_lock(uri):
        return optuna.storages.RDBStorage(uri)


def search_path(uri: str) -> str | None:
    """The schema a PostgreSQL URI's `options=-csearch_path=NAME` selects, if any."""
    if not uri.startswith("postgresql"):
        return None
    for options in urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query).get("options", []):
        found = re.search(r"-c\s*search_path=([A-Za-z_][A-Za-z0-9_]*)", options)
        if found:
            return found.group(1)
    return None


class PrunedAwareOptunaSearch(OptunaSearch):
    """OptunaSearch recording early-stopped trials as PRUNED and continuing interrupted ones in new trials, with
    intermediate values only where evaluated, named objectives and user attributes (module docstring)."""

    def __init__(self, planned: int,
                 annotate: Callable[[str, dict[str, Any] | None, bool], dict[str, Any]] | None = None, **kwargs):
        self.planned = planned
        self.annotate = annotate  # (Tune trial id, last result or None, stopped early) -> user attributes; pickled
        super().__init__(**kwargs)

    def _setup_study(self, mode) -> None:
        super()._setup_study(mode)
        with warnings.catch_warnings():  # experimental in Optuna 5.0, and what optuna-dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._ot_study.set_metric_names(list(self._metric) if isinstance(self._metric, list) else [self._metric])

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        params = super().suggest(trial_id)
        self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return params

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._live(trial_id)
        self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result, error)  # Ray's warning
            return
        self._live(trial_id)
        if result:
            self._report(trial_id, result)  # a scheduler's STOP skips on_trial_result for this last result
        finished = error or not result or result.get("epoch", 0) >= self._planned(result)
        if self.annotate is not None:
            for key, value in self.annotate(trial_id, None if error else result, not finished).items():
                self._ot_trials[trial_id].set_user_attr(key, value)
        if error and trial_id in self._ot_trials:
            # Ray tells COMPLETE with the last value a failed trial reported; it failed
            self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return
        if finished:
            super().on_trial_complete(trial_id, result, error)
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    def _report(self, trial_id: str, result: dict[str, Any]) -> None:
        """The objective as an intermediate value at step = epoch, once, where it was evaluated: a `val/...`
        metric at its `val/epoch` (trials carry it between evaluations), any other whenever reported."""
        metric = self._metric
        if isinstance(metric, list) or trial_id in self._completed_trials or metric not in result:
            return
        epoch = result.get("epoch")
        if epoch is None or (metric.startswith("val/") and result.get("val/epoch") != epoch):
            return
        trial = self._ot_trials[trial_id]
        if int(epoch) not in self._ot_study._storage.get_trial(trial._trial_id).intermediate_values:
            trial.report(float(result[metric]), int(epoch))

    def _live(self, trial_id: str) -> None:
        """A Tune trial continuing after an interruption: its old Optuna trial is FAIL; give it a new one."""
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return
        frozen = self._ot_study._storage.get_trial(trial._trial_id)
        if frozen.state == RUNNING:
            return
        self._ot_study.enqueue_trial(frozen.params, skip_if_exists=False)
        fresh = self._ot_study.ask(fixed_distributions=frozen.distributions)
        fresh.set_user_attr("continues_trial", frozen.number)
        self._ot_trials[trial_id] = fresh

    def _planned(self, result: dict[str, Any]) -> int:
        config = result.get("config") or {}
        return int(config["epochs"]) if "epochs" in config else self.planned
