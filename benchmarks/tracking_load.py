"""Load on the tracking path a cluster uses: N trial processes at once logging to one MLflow server.

For each backend (SQLite, PostgreSQL) and each N (default 8, 32, 64), a fresh study MLflow server with accounts
(platform/study_mlflow_server.py, as cluster.yaml starts it; artefacts served by it) and N processes, each
logging what a trial logs through the trials' own path (trials.tracking.MLflowHook, the login read from
~/.mlflow/credentials): per epoch its metrics in one call, a checkpoint artefact every `--checkpoint-every`
epochs, and at the last epoch the final pictures, metrics.json and genotype.json, then FINISHED; MLflow's system
metrics run beside, as in a trial. The processes import and open their runs first (run, params, environment
tags: not timed) and start logging together. A call that raises
(after MLflow's own HTTP retries) is retried the way Tune restarts a trial: a new hook finds the run again and
logs the epoch only if the run does not hold it yet.

Side by side it prints, per backend and N: metric values written per second, p50/p99 latency of a per-epoch
log call, calls that raised, HTTP retries (urllib3's), and, read back from the store afterwards, lost values
(logged by a call that returned, absent from the store), duplicated values and duplicated runs. "held" means
every trial finished inside the time bound with nothing lost or duplicated. Bounded: `--epochs` per trial,
`--timeout` per (backend, N).

    .venv/bin/python benchmarks/tracking_load.py --trials 8 32 64 --json load.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]

KEYS = 20  # numeric keys a retrain epoch reports (loss terms, lr, epoch, val/*, latency, ...)


def metrics_of(trial: int, epoch: int) -> dict[str, float]:
    """What trial `trial` reports at `epoch`: KEYS values, each one a known function of (trial, epoch, key)."""
    values = {f"load/m{k:02d}": trial * 1000.0 + epoch + k / 100.0 for k in range(KEYS - 1)}
    return {"epoch": epoch, **values}


# --- one trial process --------------------------------------------------------------------------------


def run_trial(args: argparse.Namespace) -> None:
    from trials.tracking import FINAL_KEY, MLflowHook

    retries = RetryCounter()
    logging.getLogger("urllib3.connectionpool").addHandler(retries)
    params = json.loads(Path(args.params).read_text())
    work = Path(tempfile.mkdtemp(prefix=f"load-{args.index}-"))
    checkpoint = work / "state.pt"
    checkpoint.write_bytes(os.urandom(args.checkpoint_kb * 1024))
    final = work / "final"
    final.mkdir()
    (final / "genotype.json").write_text(json.dumps({"genotype": "msmt"}))
    for name in ("rank_lists.png", "activation_maps.png"):
        (final / name).write_bytes(os.urandom(200 * 1024))

    def new_hook() -> MLflowHook:
        return MLflowHook(args.uri, args.experiment, args.parent, f"load/{args.index}", params,
                          {"msinet.role": "trial", "msinet.kind": "retrain"})

    index = int(args.index)
    hook, latencies, errors = new_hook(), [], 0
    hook.open()  # what a trial does once when it starts (run, params, environment tags): not timed
    Path(f"{args.out}.ready").write_text("")
    while not Path(args.go).exists():  # ready: wait for the others
        time.sleep(0.05)
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        metrics = metrics_of(index, epoch)
        last = epoch == args.epochs
        if last:
            metrics.update({FINAL_KEY: 0.5, "source/cmc": [0.5, 0.6, 0.7, 0.8]})
        for attempt in range(4):
            t0 = time.perf_counter()
            try:
                hook(metrics, final if last else None)
                took = time.perf_counter() - t0
                if epoch % args.checkpoint_every == 0 and not last:
                    hook.client.log_artifact(hook.open(), str(checkpoint), f"checkpoints/epoch-{epoch}")
                break
            except Exception as error:  # noqa: BLE001 - counted, then retried as a restarted trial would be
                errors += 1
                print(f"trial {args.index} epoch {epoch}: {type(error).__name__}: {str(error)[:200]}",
                      file=sys.stderr)
                if attempt == 3:
                    raise
                time.sleep(2 ** attempt)
                hook = new_hook()
        if epoch < args.epochs and attempt == 0:
            latencies.append(took)
        Path(f"{args.out}.progress").write_text(str(epoch))  # logged: the read-back expects it
    Path(args.out).write_text(json.dumps({"latencies": latencies, "errors": errors, "retries": retries.count,
                                          "seconds": time.time() - started}))


class RetryCounter(logging.Handler):
    """urllib3 warns once per retried HTTP request ("Retrying (Retry(total=...)) after ..."); MLflow's client
    retries 429 and 5xx answers and broken connections that way."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Retrying" in record.getMessage():
            self.count += 1


# --- the driver ---------------------------------------------------------------------------------------


def run_load(backend: str, n: int, args: argparse.Namespace, postgres) -> dict:
    from mlflow.tracking import MlflowClient

    from tests.servers import create_database, start_mlflow
    from trials.tracking import ensure_store

    work = Path(tempfile.mkdtemp(prefix=f"tracking-load-{backend}-{n}-"))
    home = work / "home"
    env = {**os.environ, "HOME": str(home), **(postgres.env if postgres else {})}
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    store = create_database(postgres, f"load_{n}") if backend == "postgresql" else f"sqlite:///{work / 'mlflow.db'}"
    server = start_mlflow(store, str(work / "artifacts"), env, workers=args.workers)
    os.environ["HOME"] = str(home)  # this process logs in with the same file
    trials = []
    try:
        experiment = ensure_store(server.address, f"load-{n}")
        client = MlflowClient(server.address)
        parent = client.create_run(experiment, run_name="load", tags={"msinet.role": "launch"}).info.run_id
        params = work / "params.json"
        params.write_text(json.dumps({**trial_params(), "epochs": args.epochs}))
        go = work / "go"
        for i in range(n):
            command = [sys.executable, __file__, "--trial", "--index", str(i), "--uri", server.address,
                       "--experiment", experiment, "--parent", parent, "--params", str(params), "--go", str(go),
                       "--out", str(work / f"trial-{i}.json"), "--epochs", str(args.epochs), "--checkpoint-every",
                       str(args.checkpoint_every), "--checkpoint-kb", str(args.checkpoint_kb)]
            with open(work / f"trial-{i}.log", "w") as log:
                trials.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        ready = time.monotonic() + args.timeout  # imports and run creation, not timed
        while time.monotonic() < ready and sum(Path(f"{work}/trial-{i}.json.ready").exists() for i in range(n)) < n:
            time.sleep(0.5)
        go.write_text("")
        went = time.time()
        deadline = time.monotonic() + args.timeout
        for trial in trials:
            try:
                trial.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                trial.kill()
                trial.wait()
        span = time.time() - went  # until the last trial ended (or the bound)
        results = [json.loads((work / f"trial-{i}.json").read_text()) for i in range(n)
                   if (work / f"trial-{i}.json").exists()]
        progress = [work / f"trial-{i}.json.progress" for i in range(n)]
        logged = [int(p.read_text()) if p.exists() else 0 for p in progress]
        counts = read_back(store, experiment, logged)
    finally:
        for trial in trials:
            if trial.poll() is None:
                trial.kill()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    latencies = sorted(x for r in results for x in r["latencies"])
    return {"backend": backend, "trials": n, "finished": len(results),
            "values_per_s": sum(logged) * KEYS / span,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
            "errors": sum(r["errors"] for r in results), "retries": sum(r["retries"] for r in results),
            "wall_s": span, **counts,
            "held": len(results) == n and counts["lost"] == 0 and counts["duplicated"] == 0
            and counts["duplicate_runs"] == 0 and counts["finished_runs"] == n}


def trial_params() -> dict:
    """A retrain's real config (its params are logged once per run), without a dataset to record."""
    from trials.config import make_config

    return {**make_config("retrain", {"dataset": "market1501", "scale": "smoke"}).to_dict(), "dataset": None}


def read_back(store: str, experiment: str, logged: list[int]) -> dict:
    """Straight from the store's tables: every value a trial logged (its epochs up to `logged[trial]`, the
    last one whose call returned) once, and no other; each trial one run."""
    import sqlalchemy

    expected = {(i, key, epoch): value for i, last in enumerate(logged) for epoch in range(1, last + 1)
                for key, value in metrics_of(i, epoch).items()}
    engine = sqlalchemy.create_engine(store)
    with engine.connect() as connection:
        runs = connection.execute(sqlalchemy.text(
            "SELECT r.run_uuid, t.value, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE r.experiment_id = :e AND t.key = 'msinet.trial'"), {"e": int(experiment)}).all()
        rows = connection.execute(sqlalchemy.text(
            "SELECT m.run_uuid, m.key, m.step, m.value FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
            "WHERE r.experiment_id = :e AND (m.key = 'epoch' OR m.key LIKE 'load/%')"), {"e": int(experiment)}).all()
    engine.dispose()
    trial_of = {run: int(name.split("/")[1]) for run, name, _ in runs}
    seen: dict[tuple, int] = {}
    for run, key, step, value in rows:
        spot = (trial_of[run], key, step)
        if step > logged[spot[0]]:  # logged by a call that had not returned when its trial was stopped
            continue
        seen[spot] = seen.get(spot, 0) + 1
        if expected.get(spot) != value:
            seen[("wrong", *spot)] = 1
    names = [name for _, name, _ in runs]
    return {"lost": sum(1 for spot in expected if spot not in seen),
            "duplicated": sum(count - 1 for spot, count in seen.items() if spot[0] != "wrong"),
            "wrong_values": sum(1 for spot in seen if spot[0] == "wrong"),
            "duplicate_runs": len(names) - len(set(names)),
            "finished_runs": sum(1 for _, _, status in runs if status == "FINISHED")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, nargs="+", default=[8, 32, 64], help="concurrent trial processes")
    p.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    p.add_argument("--epochs", type=int, default=5, help="epochs per trial")
    p.add_argument("--checkpoint-every", type=int, default=2, help="a checkpoint artefact every k epochs")
    p.add_argument("--checkpoint-kb", type=int, default=1024, help="size of that artefact")
    p.add_argument("--workers", type=int, default=4, help="the MLflow server's workers (mlflow server's default)")
    p.add_argument("--timeout", type=float, default=240, help="seconds the trials of one (backend, N) may take")
    p.add_argument("--json", type=Path, help="also write the rows here")
    # one trial process (internal)
    for flag in ("--index", "--uri", "--experiment", "--parent", "--params", "--go", "--out"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    p.add_argument("--trial", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.trial:
        run_trial(args)
        return 0

    from tests.servers import start_postgres

    # stopped by PID (SIGTERM; SIGINT is ignored when started in the background): servers and trials go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    postgres = start_postgres(max_connections=400) if "postgresql" in args.backends else None
    if postgres:
        os.environ.update(postgres.env)  # the read-back connects with libpq's password file too
    rows = []
    try:
        for n in args.trials:
            for backend in args.backends:
                rows.append(run_load(backend, n, args, postgres))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        if postgres:
            postgres.stop()
    header = f"{'backend':<11}{'N':>4}{'done':>6}{'values/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}" \
             f"{'retries':>9}{'lost':>6}{'dup':>5}{'dup runs':>10}  held"
    print(header)
    for r in rows:
        print(f"{r['backend']:<11}{r['trials']:>4}{r['finished']:>6}{r['values_per_s']:>10.1f}"
              f"{r['p50_ms'] or float('nan'):>9.1f}{r['p99_ms'] or float('nan'):>9.1f}{r['errors']:>8}"
              f"{r['retries']:>9}{r['lost']:>6}{r['duplicated']:>5}{r['duplicate_runs']:>10}  {r['held']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
