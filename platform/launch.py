"""Run an MSINet study: `python platform/launch.py --study smoke` (see --help and --list).

The driver: it resolves the study file into a plan, checks the data and the tracking store, starts (or
joins) Ray, opens the launch's MLflow parent run, runs the phases one after another as Ray Tune experiments,
and ends with a leaderboard and the command that opens the study in the MLflow UI. Everything a launch
needs to continue after an interruption is kept in runs/launches/<study>/<launch>.json (`--resume`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Tune warns on every checkpoint-triggered snapshot of a short trial; the progress lines are what users read.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Ctrl-C is ours (see Interrupt): Tune's own handler would stop without telling us that it did.
os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
# A failed trial is one line on the terminal (study_tune.Progress); its traceback stays in its error.txt.
os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
sys.path.insert(1, str(ROOT))  # spaces/, trials/, analysis/; platform/ itself stays first (sys.path[0])

import study_cluster  # noqa: E402
import study_data  # noqa: E402
import study_files  # noqa: E402
import study_notes  # noqa: E402
import study_registry  # noqa: E402
import study_select  # noqa: E402
import study_spec  # noqa: E402
import study_tracking  # noqa: E402
from study_launches import LaunchError, LaunchLock, claim_launch, resumable, save  # noqa: E402
from study_plan import handover_lines, plan, print_plan, study_of  # noqa: E402
from study_summary import leaderboard, print_summary  # noqa: E402

from trials.config import ConfigError  # noqa: E402
from trials.runtime.folders import OutputError, check_output  # noqa: E402

# study_tune (Ray Tune) and the data loaders (torch) are imported where they are used, so that --list,
# --dry-run and the checks of bad input answer at once.

RUNS = ROOT / "runs"  # git-ignored; --run-dir moves it
# Shipped to every worker as the Ray runtime environment's working directory, minus what is not code.
# gitignore syntax: anchored with "/" so that trials/data/ still travels.
EXCLUDES = ["/.venv", "/.git", "/runs", "/data", "__pycache__", "*.pyc", "/.pytest_cache", "/.ruff_cache", "/.whl",
            "/.gl", "/benchmarks"]


def code_excludes(run_dir: Path) -> list[str]:
    """EXCLUDES, and the run folder wherever it lies inside the checkout (`--run-dir experiments/a`): otherwise
    every launch would ship the last ones' checkpoints and stores to the workers, and stop at Ray's 512 MiB."""
    runs = run_dir.expanduser().resolve()
    inside = runs != ROOT and runs.is_relative_to(ROOT)
    return EXCLUDES + ([f"/{runs.relative_to(ROOT).as_posix()}"] if inside else [])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python platform/launch.py", description="Run an MSINet study on Ray Tune + Optuna, tracked in MLflow.",
        epilog="Example: python platform/launch.py --study cross_domain --scale smoke --synthetic")
    p.add_argument("--study", help="a study name (see --list) or the path of a study .yaml file")
    p.add_argument("--list", action="store_true", help="list the studies with a one-line description")
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit without running")
    p.add_argument("--scale", choices=study_spec.SCALES, help="smoke: tiny images and epochs, minutes on a CPU; "
                   "full: the paper's recipe (default: the study's default_scale)")
    p.add_argument("--data-dir", type=Path, help=f"folder holding the datasets' folders (default {ROOT / 'data'})")
    p.add_argument("--run-dir", type=Path, default=RUNS, help=f"where the default stores, synthetic data and launch "
                   f"records go (default {RUNS})")
    p.add_argument("--synthetic", action="store_true",
                   help="generate stand-in data in the datasets' real layouts under runs/synthetic and use it")
    p.add_argument("--address", help="join a running Ray cluster (e.g. auto); default: a local Ray instance")
    p.add_argument("--cluster", type=Path, help="plan for the node types of this `ray up` file (e.g. cluster.yaml), "
                   "read offline (default: the cluster of --address, else this machine)")
    p.add_argument("--code-in-place", action="store_true", help="trials import this checkout where it is (every "
                   "node sees this folder: a shared file system, tests/cluster's simulated cluster) instead of a "
                   "copy Ray uploads")
    p.add_argument("--num-cpus", type=_positive, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI, e.g. http://HEAD:5000 or postgresql://USER@HOST/DB "
                   "(password in ~/.pgpass; default: sqlite:///RUN_DIR/mlflow.db)")
    p.add_argument("--optuna-storage", help="Optuna's storage (default: beside a SQLite MLflow store, in a PostgreSQL "
                   "one's database under the schema optuna, else sqlite:///RUN_DIR/optuna.db)")
    p.add_argument("--storage-path", help="Ray Tune results and checkpoints, on storage all nodes share "
                   "(default: RUN_DIR/tune)")
    p.add_argument("--num-samples", type=_positive, help="trials per phase (overrides the study)")
    p.add_argument("--max-concurrent", type=_positive, help="trials running at once per phase")
    p.add_argument("--gpus-per-trial", type=_fraction, help="GPUs per trial, fractions allowed (e.g. 0.25)")
    p.add_argument("--seed", type=_integer, default=0, help="seed of the trials and of Optuna's TPE sampler")
    p.add_argument("--resume", nargs="?", const="latest", metavar="LAUNCH",
                   help="continue an interrupted launch of --study (default: its latest)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study value: a trial config key for every phase (lr=0.05), "
                        "PHASE.FIELD (search.num_samples=4, retrain.config.epochs=60) or a study field (metric=...)")
    p.add_argument("--verbose", action="store_true", help="a progress line for every epoch of every trial")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        rows = study_spec.describe()
        width = max(len(name) for name, _ in rows)
        for name, text in rows:
            print(f"{name:<{width}}  {text}")
        return 0
    if not args.study:
        return _fail("give --study NAME (python platform/launch.py --list shows them)")
    try:
        launch = resume_launch(args) if args.resume else new_launch(args)
        study_files.check_files(study_of(launch))  # tables, genotypes, weights: as the trials will read them
        if args.dry_run:
            print_plan(launch, resolve_cluster(args))
            return 0
        return run(launch, args)
    except (study_spec.StudyError, ConfigError, study_data.DataError, study_files.FileError,
            study_tracking.TrackingError, LaunchError, OutputError, study_cluster.ClusterError) as error:
        return _fail(str(error))
    except KeyboardInterrupt:  # a second Ctrl-C, or one during Ray's start or shutdown
        print("\nstopped at once; python platform/launch.py --study ... --resume continues an interrupted launch",
              file=sys.stderr)
        return 130


def new_launch(args: argparse.Namespace) -> dict[str, Any]:
    study = study_spec.load_study(args.study, args.scale, study_spec.parse_overrides(args.set))
    for phase in study.phases:
        if args.num_samples:
            phase.num_samples = args.num_samples
        if args.max_concurrent:
            phase.max_concurrent = args.max_concurrent
        if args.gpus_per_trial is not None:
            phase.resources["gpu"] = args.gpus_per_trial
    runs = args.run_dir.expanduser().resolve()
    synthetic = args.synthetic or (study.synthetic and args.data_dir is None)
    data_dir = (runs / "synthetic") if synthetic and args.data_dir is None else (args.data_dir or ROOT / "data")
    tracking_uri = args.tracking_uri or f"sqlite:///{runs / 'mlflow.db'}"
    check_output(runs, "--run-dir", create=False)
    study_tracking.check_uri(tracking_uri, "--tracking-uri" if args.tracking_uri else
                             f"--run-dir {runs}: its default tracking URI")
    if args.optuna_storage:
        study_tracking.check_uri(args.optuna_storage, "--optuna-storage")
    data_dir = Path(data_dir).expanduser().resolve()
    study_data.check_kinds(study, data_dir, args.data_dir is not None)
    return {
        "study": study.to_dict(), "launch": None, "seed": args.seed, "synthetic": synthetic,  # claimed by run()
        "data_dir": str(data_dir), "data_dir_given": args.data_dir is not None, "tracking_uri": tracking_uri,
        "optuna_storage": args.optuna_storage or optuna_storage(tracking_uri, runs),
        "storage_path": storage_path(args.storage_path, runs),
        "records": str(runs / "launches" / study.name), "phases": {}, "status": "new",
    }


def resume_launch(args: argparse.Namespace) -> dict[str, Any]:
    changed = [flag for flag, value in (("--set", args.set), ("--scale", args.scale), ("--data-dir", args.data_dir),
                                        ("--num-samples", args.num_samples), ("--synthetic", args.synthetic),
                                        ("--gpus-per-trial", args.gpus_per_trial), ("--tracking-uri",
                                                                                     args.tracking_uri),
                                                    ("--optuna-storage", args.optuna_storage))
               if value]
    if changed:
        raise LaunchError(f"--resume continues a launch with the plan it started with; drop {', '.join(changed)} "
                          f"(or start a new launch without --resume)")
    name = study_spec.study_path(args.study).stem
    launch = resumable(args.run_dir.expanduser().resolve() / "launches" / name, args.resume, name)
    launch["resumed"] = True
    return launch


def optuna_storage(tracking_uri: str, runs: Path) -> str:
    """Beside a SQLite MLflow store; in a PostgreSQL MLflow store's database under its own schema `optuna`
    (MLflow and Optuna each keep an `alembic_version` table); with a tracking server, in the local run folder
    (only the driver uses it)."""
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///'):]).parent / 'optuna.db'}"
    if tracking_uri.startswith("postgresql"):
        return f"{tracking_uri}{'&' if '?' in tracking_uri else '?'}options=-csearch_path%3Doptuna"
    return f"sqlite:///{runs / 'optuna.db'}"


def storage_path(value: str | None, runs: Path) -> str:
    """Absolute: trials run in their own working directories. URIs (s3://...) pass through."""
    if value and "://" in value:
        return value
    return str(Path(value).expanduser().resolve() if value else runs / "tune")


def run(launch: dict[str, Any], args: argparse.Namespace) -> int:
    study = study_of(launch)
    study_tracking.check_reachable(launch["tracking_uri"])
    study_tracking.check_database(launch["optuna_storage"], "--optuna-storage")
    runs = args.run_dir.expanduser().resolve()
    check_output(runs, "--run-dir")
    data_dir = Path(launch["data_dir"])
    if launch["synthetic"]:
        study_data.prepare_synthetic(study, data_dir, launch["seed"])
    study_data.check_data(study, data_dir, launch["synthetic"], runs / "image_check.json",
                          launch.get("data_dir_given", True))
    if launch["launch"] is None:
        launch["launch"], record = claim_launch(Path(launch["records"]))
        launch["state_file"] = str(record)
    lock = LaunchLock(Path(launch["state_file"]))
    lock.acquire()  # held until this driver exits: a second driver cannot --resume this launch meanwhile
    try:
        return run_locked(study, launch, args)
    finally:
        lock.release()


def run_locked(study: study_spec.Study, launch: dict[str, Any], args: argparse.Namespace) -> int:
    import ray

    interrupt = Interrupt()
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    if args.address and study_tracking.login_from_env():
        print(f"warning: the MLflow login is in this shell's environment ({', '.join(study_tracking.login_from_env())})"
              "; trials on other nodes do not get it and read ~/.mlflow/credentials there", file=sys.stderr)
    # No secret goes into the runtime environment: Ray writes it into its logs on every node. The trials' MLflow
    # client reads the login from ~/.mlflow/credentials where it runs (a local instance inherits ours).
    code = {"working_dir": f"local://{ROOT}"} if args.code_in_place else {"working_dir": str(ROOT),
                                                                          "excludes": code_excludes(args.run_dir)}
    ray.init(address=args.address, num_cpus=args.num_cpus if not args.address else None, include_dashboard=False,
             log_to_driver=args.verbose, configure_logging=True, logging_level="WARNING",
             runtime_env={**code,
                          "env_vars": {"PYTHONUNBUFFERED": "1", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}})
    try:
        cluster = resolve_cluster(args, connected=True)
        print_plan(launch, cluster)  # a trial no node can hold raises here, before anything is recorded
        return run_phases(study, launch, args, interrupt, cluster)
    finally:
        ray.shutdown()


def resolve_cluster(args: argparse.Namespace, connected: bool = False) -> study_cluster.Cluster:
    """The cluster the plan is for: --cluster FILE (offline), else the cluster of --address, else this machine."""
    if args.cluster:
        return study_cluster.read_cluster_yaml(args.cluster)
    if not args.address:
        if not connected:  # a dry run here may be planning for a cluster: a request this machine lacks warns
            return dataclasses.replace(study_cluster.local_machine(args.num_cpus), complete=False)
        import ray

        total = ray.cluster_resources()
        return study_cluster.local_machine(total.get("CPU", 0.0), total.get("GPU", 0.0))
    if connected:
        return study_cluster.connected_cluster()
    import ray

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="WARNING")
    try:
        return study_cluster.connected_cluster()
    finally:
        ray.shutdown()


def settle(study: study_spec.Study, launch: dict[str, Any], status: str = "KILLED") -> None:
    """A stopped driver's trials are not running any more: their runs `status`, their Optuna trials FAIL
    (analysis.launch_state, the one verdict readers apply too); resumed trials reopen their runs and get new
    Optuna trials."""
    from analysis.launch_state import settle as settle_stores

    settle_stores(launch["tracking_uri"], launch["experiment_id"], launch["parent_run_id"], launch["optuna_storage"],
                  f"{study.name}-{launch['launch']}-", status)


class Interrupt:
    """Ctrl-C or SIGTERM. During a Tune run: SIGUSR1, Tune's signal to stop gracefully and save its state, so
    that `--resume` continues the phase; a second signal, or one outside a Tune run, stops at once."""

    def __init__(self):
        self.requested = False
        self.in_tune = False

    def __call__(self, signum, frame) -> None:
        if self.requested or not self.in_tune:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping: Tune saves the state of the running trials (again to stop at once)", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGUSR1)


def run_phases(study: study_spec.Study, launch: dict[str, Any], args: argparse.Namespace,
               interrupt: Interrupt, cluster: study_cluster.Cluster) -> int:
    import study_tune
    from ray import tune

    if launch.get("parent_run_id"):
        # After a crash the runs of the trials that were running say RUNNING; they resume (and say so) below.
        settle(study, launch)
        study_tracking.reopen_parent(launch["tracking_uri"], launch["parent_run_id"])
    else:
        launch["experiment_id"], launch["parent_run_id"] = study_tracking.open_parent(
            launch["tracking_uri"], study, launch["launch"], plan(launch, cluster), args.run_dir.expanduser().resolve())
        study_notes.log_launch_params(launch["tracking_uri"], launch["parent_run_id"], plan(launch, cluster))
    launch["status"] = "running"
    save(launch)
    objectives = study_spec.objectives(study)
    tracked = sorted({m for m, _ in objectives} | {m for p in study.phases for spec in (p.genotypes, p.configs)
                                                   if spec for m in spec.get("budget", {})})
    try:
        for phase in study.phases:
            record = launch["phases"].setdefault(phase.name, {"status": "pending"})
            if record["status"] == "done":
                print(f"phase {phase.name}: done in an earlier run of this launch", file=sys.stderr)
                continue
            earlier = [row for r in launch["phases"].values() for row in r.get("rows", [])]
            if "genotypes" not in record:
                try:
                    genotypes, groups = ([], {}) if phase.genotypes is None else study_select.select_genotypes(
                        phase.genotypes, earlier, objectives, launch["seed"])
                except RuntimeError as error:
                    raise LaunchError(f"phase {phase.name!r} cannot start: {error}") from None
                record.update(genotypes=genotypes, groups=groups)
            if phase.configs and "configs" not in record:
                try:
                    chosen = study_select.select_configs(phase.configs, earlier, objectives)
                except RuntimeError as error:
                    raise LaunchError(f"phase {phase.name!r} cannot start: {error}") from None
                record.update(configs=[row["config"] for row in chosen],
                              finals=study_select.final_entries(phase.configs, chosen, study.metric, phase.config))
                for side in study_select.uncovered_groups(phase.configs, earlier, chosen):
                    print(f"warning: phase {phase.name}: no trial of {phase.configs['from']} with "
                          f"{phase.configs['group_by']}={side} ran all its epochs, so the final comparison lacks "
                          "it", file=sys.stderr)
            context = {"kind": phase.kind, "phase": phase.name, "launch": launch["launch"],
                       "tracking_uri": launch["tracking_uri"], "experiment_id": launch["experiment_id"],
                       "parent_run_id": launch["parent_run_id"], "space": list(phase.space),
                       "groups": record["groups"], "final": bool(phase.configs), "metrics": tracked,
                       "study": study.name, "metric": study.metric, "mode": study.mode,
                       "phase_description": phase.description,
                       "decisions": {row["genotype"]: row["decision"] for row in earlier if row.get("decision")},
                       "finals": record.get("finals", [])}
            for line in handover_lines(launch, phase):
                print(line, flush=True)
            name = f"{study.name}-{launch['launch']}-{phase.name}"
            path = f"{launch['storage_path'].rstrip('/')}/{name}"
            record.update(status="running", experiment=path)
            save(launch)
            if tune.Tuner.can_restore(path):
                print(f"phase {phase.name}: continuing {path} (if Tune reports a FileNotFoundError for a "
                      "checkpoint_NNNNNN below, that checkpoint was pruned by keep_checkpoints; the trial continues "
                      "from its newest one)", file=sys.stderr)
                tuner = study_tune.restore_tuner(phase, context, path)
            else:
                phase_with_data = dataclasses.replace(phase, config={**phase.config, "data_dir": launch["data_dir"]})
                tuner = study_tune.build_tuner(study, phase_with_data, record["genotypes"], context,
                                               launch["storage_path"], name, launch["optuna_storage"], launch["seed"],
                                               args.verbose, record.get("configs"))
            interrupt.in_tune = True
            results = tuner.fit()
            interrupt.in_tune = False
            if interrupt.requested:
                raise KeyboardInterrupt
            record.update(status="done", rows=study_tune.result_rows(results, phase, context))
            save(launch)
    except KeyboardInterrupt:
        launch["status"] = "interrupted"
        save(launch)
        settle(study, launch)
        study_tracking.close_parent(launch["tracking_uri"], launch["parent_run_id"], "KILLED")
        where = "" if args.run_dir.expanduser().resolve() == RUNS else f" --run-dir {args.run_dir}"
        print(f"\ninterrupted. Continue with: python platform/launch.py --study {study.name} --resume "
              f"{launch['launch']}{where}", file=sys.stderr)
        return 130
    except Exception:
        launch["status"] = "failed"
        save(launch)
        settle(study, launch, "FAILED")
        study_tracking.close_parent(launch["tracking_uri"], launch["parent_run_id"], "FAILED")
        raise

    rows = [row for r in launch["phases"].values() for row in r.get("rows", [])]
    table = leaderboard(rows, study)
    hours = study_tracking.record_gpu_hours(launch["tracking_uri"], launch["experiment_id"], launch["parent_run_id"])
    study_tracking.close_parent(launch["tracking_uri"], launch["parent_run_id"], "FINISHED",
                                {"leaderboard.csv": table.to_csv(index=False),
                                 "leaderboard.txt": table.to_string(index=False)})
    launch["status"] = "finished"
    save(launch)
    print_summary(table, launch, study)
    print(f"GPU-hours held (GPU share x time each trial ran): {hours.pop('total'):.3f}"
          + "".join(f"; {phase} {value:.3f}" for phase, value in hours.items()))
    champion = study_registry.register_launch_champion(launch, study)
    study_notes.log_launch_summary(launch["tracking_uri"], launch["parent_run_id"], study, rows, table, champion)
    failed = [row["trial"] for row in rows if row["status"] == "failed"]
    return 1 if failed and len(failed) == len(rows) else 0


def _positive(text: str) -> int:
    """argparse names a type function's failure by the function's name: every failure here says what it wants."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 (fractions allowed), got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
