"""One study phase as one Ray Tune experiment: param space, Optuna, ASHA, retries, checkpoints, results.

* A phase with a search `space` uses OptunaSearch (TPE, seeded) whose Optuna study lives in an SQLite file
  beside the MLflow store, so `--resume` continues it and optuna-dashboard can open it. Its `grid` values
  (and the genotypes of a retrain phase) become categorical dimensions, and every combination is enqueued
  once at the recipe's values, so each one runs before TPE spends the remaining samples.
* A phase without a space runs its grid (x one seed per sample) with Tune's own variant generator.
* A final phase (`configs`) runs the configurations chosen from an earlier phase, one trial each, as
  Tune's points to evaluate, without a hold-out and without early stopping.
* Ray's OptunaSearch tells Optuna that a trial ASHA stopped is COMPLETE, with its early value; here it is
  PRUNED (its intermediate values kept), so TPE and optuna-dashboard see which trials really finished.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Any

import study_notes
import study_retries
import study_spec
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from study_optuna import PrunedAwareOptunaSearch, open_storage
from study_plan import warm_start_points
from study_spec import Phase, Study, sample_count, trial_values

from trials.config import make_config
from trials.runtime.failures import TrialFailed, failure_kind
from trials.runtime.placement import PackedPlacement
from trials.tracking import MLflowHook
from trials.tune_entry import run_trial, trial_group, trial_run_name

RESULT_KEYS = ("val/mAP", "val/rank1", "val/mAP_ci_low", "val/mAP_ci_high", "val/rank1_ci_low", "val/rank1_ci_high",
               "val/num_valid_queries", "val/num_valid_ids", "source/mAP", "source/rank1", "source/rank5",
               "source/mINP", "target/mAP", "target/rank1", "target/rank5", "target/mINP", "params_no_classifier",
               "macs", "latency/ms", "latency/b1_ms_per_image")


def param_space(phase: Phase, genotypes: list[str], seed: int) -> dict[str, Any]:
    """Tune's param space: fixed config, searched dimensions, grid (categorical for Optuna, else a grid)."""
    space: dict[str, Any] = {"seed": seed, **phase.config}
    for key, spec in phase.space.items():
        (dist, bounds), = spec.items()
        space[key] = {"loguniform": tune.loguniform, "uniform": tune.uniform, "choice": tune.choice,
                      "int": lambda low, high: tune.randint(low, high + 1)}[dist](
            *([bounds] if dist == "choice" else bounds))
    grid = trial_values(phase, genotypes)
    if phase.space:
        space.update({k: tune.choice(v) for k, v in grid.items()})
    else:
        space.update({k: tune.grid_search(v) for k, v in grid.items()})
        if phase.num_samples > 1 and "seed" not in grid:  # repeats differ by seed, not by nothing
            space["seed"] = tune.grid_search([seed + i for i in range(phase.num_samples)])
    return space


def final_points(phase: Phase, configs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A final phase's param space and points: each chosen config with the phase's own (no hold-out) on top."""
    points = [{**config, **phase.config} for config in configs]
    space: dict[str, Any] = {}
    for key in sorted({k for point in points for k in point}):
        values = []
        for point in points:
            if point.get(key) not in values:
                values.append(point.get(key))
        space[key] = values[0] if len(values) == 1 else tune.choice(values)
    return space, points


def build_tuner(study: Study, phase: Phase, genotypes: list[str], context: dict[str, Any], storage_path: str,
                name: str, optuna_storage: str, seed: int, verbose: bool,
                configs: list[dict[str, Any]] | None = None) -> tune.Tuner:
    search_alg = None
    space = param_space(phase, genotypes, seed)
    objectives = study_spec.objectives(study)
    # Several objectives: Optuna's sampler gets them all (TPE is multi-objective), ASHA the first.
    multi = len(objectives) > 1 and bool(phase.space) and not phase.configs
    num_samples = sample_count(phase, genotypes) if phase.space else 1
    if phase.configs:
        from ray.tune.search import BasicVariantGenerator

        space, points = final_points(phase, configs or [])
        search_alg, num_samples = BasicVariantGenerator(points_to_evaluate=points), len(points)
    elif phase.space:
        storage = open_storage(optuna_storage)
        targets = {"metric": [m for m, _ in objectives], "mode": [m for _, m in objectives]} if multi else {}
        search_alg = PrunedAwareOptunaSearch(
            planned_epochs(phase.kind, phase.config), annotate=functools.partial(optuna_annotation, context),
            points_to_evaluate=warm_start_points(phase, genotypes) or None, seed=seed, study_name=name,
            storage=storage, **targets)
    scheduler = None
    if phase.early_stopping:
        max_t = make_config(phase.kind, phase.config).epochs
        scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=phase.early_stopping["grace_period"],
                                  reduction_factor=phase.early_stopping["reduction_factor"],
                                  **({"metric": study.metric, "mode": study.mode} if multi else {}))
    # A final phase has no hold-out, so no `val/` metric for Tune to check results against; with several
    # objectives the searcher and the scheduler hold their own.
    metric, mode = (None, None) if phase.configs or multi else (study.metric, study.mode)
    # Without a searcher, one pass over the grid (seeds included) is every trial. A trial's process is reused by
    # the phase's next trial (`reuse_actors`): it has imported torch, torchvision and MLflow and, on a GPU,
    # created its CUDA context already (a cross_domain smoke launch: 23 % less CPU time, the same metrics to
    # the last digit; benchmarks/README.md). A trial seeds everything itself; a failed trial's process is
    # never reused.
    tune_config = tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                  num_samples=num_samples, max_concurrent_trials=phase.max_concurrent,
                                  reuse_actors=True)
    return tune.Tuner(trainable(phase, context), param_space=space, tune_config=tune_config,
                      run_config=run_config(phase, context, storage_path, name, verbose))


def restore_tuner(phase: Phase, context: dict[str, Any], path: str) -> tune.Tuner:
    """Continue an interrupted phase: finished trials stay, unfinished and errored ones continue."""
    return tune.Tuner.restore(path, trainable(phase, context), resume_unfinished=True, resume_errored=True)


def trainable(phase: Phase, context: dict[str, Any]):
    study_retries.install()  # a failure that repeats is never retried (platform/study_retries.py)
    return tune.with_resources(tune.with_parameters(run_trial, context=context), PackedPlacement(phase.resources))


def run_config(phase: Phase, context: dict[str, Any], storage_path: str, name: str, verbose: bool) -> tune.RunConfig:
    callbacks: list[tune.Callback] = [Progress(phase.name, phase.kind, phase.space, verbose)]
    if context.get("tracking_uri"):
        callbacks += [TrialRunStatus(context), Heartbeat(context), GpuHours(context, phase.resources["gpu"])]
    return tune.RunConfig(
        name=name, storage_path=storage_path, verbose=0, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=phase.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=phase.keep_checkpoints),
    )


class Progress(tune.Callback):
    """One line per event on stderr: which trials run, their loss and val/mAP at each evaluation, what finished
    (`--verbose`: every epoch)."""

    def __init__(self, phase: str, kind: str, space: dict[str, Any], verbose: bool):
        self.phase = phase
        self.kind = kind
        self.space = list(space)
        self.verbose = verbose
        self.started = time.monotonic()

    def _say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f}s {self.phase}] {text}", file=sys.stderr, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        shown = {k: trial.config.get(k) for k in self.space + ["genotype", "supervision", "sam_mode"]
                 if k in trial.config}
        running = 1 + sum(t.status == "RUNNING" for t in trials if t is not trial)
        self._say(f"start {trial.trial_id} ({running} running) {_format(shown)}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        evaluated = result.get("val/epoch") == result.get("epoch")  # a fresh val/mAP: every eval_interval epochs
        epochs = planned_epochs(self.kind, trial.config)
        if self.verbose or evaluated or result.get("epoch") == epochs:
            keys = ("loss", "loss/weight", "val/mAP")
            self._say(f"{trial.trial_id} epoch {result.get('epoch')}/{epochs} "
                      f"{_format({k: result[k] for k in keys if k in result})}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        early = stopped_early(self.kind, trial.config, result)
        shown = {k: result[k] for k in ("val/mAP", "source/mAP", "target/mAP") if k in result}
        self._say(f"{'stopped early' if early else 'finished'} {trial.trial_id} at epoch {result.get('epoch')} "
                  f"{_format(shown)} {result.get('genotype', '')}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        repeats = failure_kind(study_retries.last_error(trial))
        why = f"{repeats}, not retried" if repeats else "retries used up" if trial.max_failures else "no retries"
        what = trial_error(trial).removeprefix(f"{repeats}: ")
        self._say(f"FAILED {trial.trial_id} ({why}): {what} (traceback: {trial.error_file})")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self._say(f"retrying {trial.trial_id} from its last checkpoint after: {trial_error(trial)} "
                  f"(traceback: {trial.error_file})")


def result_rows(results: tune.ResultGrid, phase: Phase, context: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per trial: what the leaderboard and the next phase need, JSON-serialisable. `decision` is the
    genotype with its decision margins (search trials, and retrains of a searched genotype)."""
    from analysis.uncertainty import interval_keys

    tracked = [*context.get("metrics", ()), *(key for m in context.get("metrics", ()) for key in interval_keys(m))]
    rows = []
    for result in results:
        metrics = result.metrics or {}
        config = result.config or {}
        status = "failed" if result.error else (
            "stopped early" if stopped_early(phase.kind, config, metrics) else "finished")
        row = {"phase": phase.name, "trial": metrics.get("trial_id") or Path(result.path).name, "status": status,
               "group": trial_group(make_config(phase.kind, config).to_dict(), context),
               "genotype": metrics.get("genotype") or str(config.get("genotype", "")),
               "epoch": metrics.get("epoch"), "config": dict(config)}
        decision = study_notes.genotype_decision({**metrics, "genotype": row["genotype"]}, context)
        if decision:
            row["decision"] = decision
        row.update({k: config.get(k) for k in [*phase.space, *phase.grid, "supervision", "sam_mode"]
                    if k in config})
        row.update({k: metrics[k] for k in (*RESULT_KEYS, *tracked) if isinstance(metrics.get(k), int | float)})
        row.update(study_notes.margin_metrics(metrics))
        if result.error:
            cause = getattr(result.error, "cause", None) or result.error
            row["error"] = (str(cause) if isinstance(cause, TrialFailed)
                            else str(result.error).strip().splitlines()[-1])[:300]
        rows.append(row)
    return rows


def trial_error(trial) -> str:
    """A failure that repeats as the trial said it (`kind: message`), else the last line of the failed trial's
    traceback (the exception itself), or why there is none."""
    error = study_retries.last_error(trial)
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, TrialFailed):
        return str(cause)[:1000]
    text = ""
    try:  # the driver's own copy first: Tune writes it at once, the storage copy (get_error) only when it syncs
        local = Path(trial.error_file) if trial.error_file else None
        text = local.read_text(errors="replace") if local and local.is_file() else str(trial.get_error() or "")
    except Exception:  # noqa: BLE001 - a missing error file must not hide the failure itself
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:1000] if lines else "the trial's worker died without an error message"


class TrialRunStatus(tune.Callback):
    """Closes a trial's MLflow run when Tune ended the trial (an error after the last retry, or early stopping),
    and writes what people read first on every trial's run: its description and genotype with margins
    (study_notes)."""

    def __init__(self, context: dict[str, Any]):
        self.context = context

    def _hook(self, trial) -> MLflowHook:
        c = self.context
        return MLflowHook(c["tracking_uri"], c["experiment_id"], c["parent_run_id"],
                          trial_run_name(c["phase"], trial.trial_id), params=trial.config)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        hook = self._hook(trial)
        error = trial_error(trial)
        hook.fail(error)
        status = study_notes.status_text(trial.last_result, planned_epochs(self.context["kind"], trial.config),
                                          False, error)
        study_notes.annotate_trial_run(hook.client, hook.open(), self.context, trial.trial_id, trial.last_result,
                                       status)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        hook = self._hook(trial)
        stopped = stopped_early(self.context["kind"], trial.config, result)
        if stopped:
            run_id = hook.open()
            hook.client.set_tag(run_id, "msinet.stopped_early", "true")
            hook.client.set_tag(run_id, "msinet.stopped_epoch", str(result.get("epoch", 0)))
            if trial.checkpoint is not None:
                with trial.checkpoint.as_directory() as directory:
                    hook.finish(result, Path(directory))
            else:
                hook.finish(result)
        run_id = hook.find_run_id()
        if run_id is not None:
            status = study_notes.status_text(result, planned_epochs(self.context["kind"], trial.config), stopped)
            study_notes.annotate_trial_run(hook.client, run_id, self.context, trial.trial_id, result, status)


def optuna_annotation(context: dict[str, Any], trial_id: str, result: dict[str, Any] | None,
                      stopped: bool) -> dict[str, Any]:
    """The user attributes of a trial's Optuna trial (module-level: the searcher is pickled with it)."""
    return study_notes.optuna_attributes(context, trial_id, result, stopped)


class Heartbeat(tune.Callback):
    """Refreshes the parent run's heartbeat tag while the driver lives, so that a report can tell a launch
    whose driver was killed (RUNNING, heartbeat old) from one that is running."""

    def __init__(self, context: dict[str, Any], every: float = 30.0):
        self.context = context
        self.every = every
        self.last = 0.0

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            from study_tracking import beat

            beat(self.context["tracking_uri"], self.context["parent_run_id"])


class GpuHours(tune.Callback):
    """The GPU time each trial held: its GPU share times the time its actor ran, added to its run's `gpu_hours`
    metric at the end of every attempt (finished, stopped, failed, retried), so retries and --resume add up."""

    def __init__(self, context: dict[str, Any], gpu: float):
        self.context = context
        self.gpu = gpu
        self.started: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.started[trial.trial_id] = time.monotonic()

    def _ended(self, iteration, trials, trial, **info) -> None:
        start = self.started.pop(trial.trial_id, None)
        if start is not None and self.gpu > 0:
            from study_tracking import add_gpu_hours

            c = self.context
            hours = (time.monotonic() - start) * self.gpu / 3600
            try:
                add_gpu_hours(c["tracking_uri"], c["experiment_id"], c["parent_run_id"],
                              trial_run_name(c["phase"], trial.trial_id), hours)
            except Exception as error:  # noqa: BLE001 - a bookkeeping failure must not stop the launch
                print(f"warning: {trial.trial_id}: {hours:.4f} GPU-hours not recorded: {error}", file=sys.stderr)

    on_trial_complete = on_trial_error = on_trial_recover = _ended


def planned_epochs(kind: str, config: dict[str, Any]) -> int:
    """The epochs a trial was to run: its config with the scale preset and recipe filled in."""
    return make_config(kind, config).epochs


def stopped_early(kind: str, config: dict[str, Any], result: dict[str, Any]) -> bool:
    """Ended before its last epoch without an error: a scheduler stopped it."""
    return result.get("epoch", 0) < planned_epochs(kind, config)


def _format(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
