"""The GPU cluster a user gets from `ray up cluster.yaml`, proven on one machine: the shipped node types on Ray's
own autoscaler (tests/cluster/fake_cluster.py), with token authentication on.

One launch of the smoke study, at the per-trial resources the full studies ship, carries most assertions: the
cluster scales from zero to the nodes the plan expects, each node runs the trials the plan says, the retrain
trials pack onto one node, a worker node killed mid-trial (a spot reclaim) costs no epoch and no MLflow run,
the GPU time held is recorded, and every node goes away after the idle timeout. The trials run with
`device: cpu` (the simulated GPUs are logical), except in the test that checks what a trial holding a GPU
without CUDA does. Tests run in file order on one cluster; the last one waits for it to scale back to zero.
"""

import json
import re
import subprocess
import sys
import threading
import time

import pytest
import study_spec
from study_cluster import fit, read_cluster_yaml
from study_plan import placement

from tests.cluster.fake_cluster import CLUSTER_YAML, HEAD_TYPE, IDLE_TIMEOUT_MINUTES, MAX_WORKERS
from tests.processes import ROOT

pytestmark = pytest.mark.slow
PROGRESS = re.compile(r"\[\s*\d+s (\w+)\] (\w+) epoch (\d+)/(\d+)")
SEARCH_EPOCHS = 2
RETRAIN_EPOCHS = 12  # room for the kill to land mid-trial: on an idle machine an epoch takes about 1.5 s
KILL_AT_EPOCH = 2  # the retrain trials' node dies once a trial has reported (and checkpointed) this epoch
IMPOSSIBLE_WITHIN_S = 60  # the stated time: an impossible request ends the launch before any trial starts


def shipped_resources() -> dict:
    """What the full studies ask per trial (one shape across them: tests/platform/test_cluster_plan.py)."""
    return study_spec.load_study("nas", "full").phase("search").resources


def resources_flag(phase: str) -> list[str]:
    r = shipped_resources()
    return ["--set", f"{phase}.resources={{cpu: {r['cpu']:g}, gpu: {r['gpu']:g}}}"]


def mlflow_client(run_dir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")


def trial_runs(run_dir, phase: str | None = None) -> list:
    client = mlflow_client(run_dir)
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id], "tags.`msinet.role` = 'trial'", max_results=100)
    return [r for r in runs if phase is None or r.data.tags["msinet.phase"] == phase]


# --- the harness follows cluster.yaml -------------------------------------------------------------------


def test_simulated_node_types_are_cluster_yamls(cluster):
    shipped = read_cluster_yaml(CLUSTER_YAML)
    types = cluster.config["available_node_types"]
    head = next(t for t in shipped.node_types if t.head)
    assert types[HEAD_TYPE]["resources"] == {"CPU": int(head.cpus)} == {"CPU": 0}  # no trial on the head
    workers = [t for t in shipped.node_types if not t.head]
    assert workers and {t.name for t in workers} == set(types) - {HEAD_TYPE}
    for node in workers:  # g5.xlarge: 4 vCPU, 1 A10G, from the instance type as `ray up` would fill it in
        assert types[node.name]["resources"] == {"CPU": int(node.cpus), "GPU": int(node.gpus)}
        assert types[node.name]["max_workers"] == min(node.max_nodes, MAX_WORKERS)
        assert "memory" not in types[node.name]["resources"]
    assert cluster.config["provider"]["gcs_address"] == cluster.address
    alive = [n for n in cluster.nodes() if n["alive"]]
    assert [n["head"] for n in alive] == [True] and alive[0]["resources"].get("CPU", 0) == 0  # from zero
    print(f"\nfake cluster head up in {cluster.started_s:.1f}s")


def test_dry_run_plans_the_connected_cluster_as_the_file_says(cluster):
    connected = cluster.launch("--study", "nas", "--dry-run", timeout=180)
    assert connected.returncode == 0, connected.stderr[-3000:]
    assert "cluster: the connected cluster (autoscaler config" in connected.stdout
    layouts = [line for line in connected.stdout.splitlines() if line.startswith("  cluster:")]
    study = study_spec.load_study("nas")
    offline = read_cluster_yaml(CLUSTER_YAML)  # what `--dry-run --cluster cluster.yaml` prints, in-process
    assert len(layouts) == len(study.phases) == 3
    for line, phase in zip(layouts, study.phases, strict=True):
        spot = placement(study, phase, offline)["layout"]
        assert (f"{spot['trials_per_node']} trial(s) per gpu_worker node, {spot['trials_per_gpu']:g} per GPU (limited "
                f"by {spot['limit']}); idle per node: {spot['idle_cpus_per_node']:g} CPU, "
                f"{spot['idle_gpus_per_node']:g} GPU") in line
        assert spot["trials_per_node"] == 2 and spot["idle_gpus_per_node"] == 0
    assert "warning" not in connected.stderr  # no GPU idles


# --- an impossible request -------------------------------------------------------------------------------


def test_an_impossible_request_fails_the_launch_at_once(cluster, tmp_path):
    started = time.monotonic()
    result = cluster.launch("--study", "smoke", "--run-dir", str(tmp_path), "--set", "search.resources.cpu=8",
                            timeout=IMPOSSIBLE_WITHIN_S + 60)
    took = time.monotonic() - started
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    assert "phase 'search' asks for 8 CPU + 0 GPU per trial" in errors[0]
    assert "the largest node type is gpu_worker (4 CPU, 1 GPU)" in errors[0]
    assert "Traceback" not in result.stderr
    assert took < IMPOSSIBLE_WITHIN_S, f"took {took:.0f}s"
    assert not cluster.workers_alive()  # nothing was asked of the autoscaler
    print(f"\nimpossible request refused in {took:.1f}s")


# --- one launch: autoscaling, packing, a node lost mid-trial, GPU time --------------------------------------


@pytest.fixture(scope="module")
def main_launch(cluster, tmp_path_factory) -> dict:
    """The smoke study at the shipped resources: 4 search trials, then the 2 best genotypes retrained; when a
    retrain trial has checkpointed epoch KILL_AT_EPOCH, its node is killed."""
    run_dir = tmp_path_factory.mktemp("cluster-launch") / "runs"
    assert not cluster.workers_alive()
    command = cluster.launch_command(
        "--study", "smoke", "--run-dir", str(run_dir), "--verbose", "--set", "device=cpu",
        *resources_flag("search"), *resources_flag("retrain"), "--set", "search.num_samples=4",
        "--set", "search.max_concurrent=4", "--set", f"search.config.epochs={SEARCH_EPOCHS}",
        "--set", "search.early_stopping=null", "--set", f"retrain.config.epochs={RETRAIN_EPOCHS}",
        "--set", "retrain.config.eval_interval=3")
    mlflow_client(run_dir)  # imported now: the kill below must follow the report it waits for closely
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(process.stdout), daemon=True)
    reader.start()
    err, killed = [], {}
    for line in process.stderr:
        err.append(line)
        match = PROGRESS.search(line)
        if not killed and match and match[1] == "retrain" and int(match[3]) >= KILL_AT_EPOCH:
            run = next(r for r in trial_runs(run_dir, "retrain") if r.data.tags["msinet.trial"].endswith(match[2]))
            node = run.data.tags["msinet.nodes"].split(",")[-1]
            killed = {"node": node, "pids": cluster.kill_node(node), "at_s": time.monotonic() - started,
                      "trial": match[2], "epoch": int(match[3])}
    process.wait(timeout=60)
    reader.join(timeout=60)
    ended = time.time()
    (run_dir / "launch.out").write_text("".join(out))  # kept for a post-mortem of a failed run
    (run_dir / "launch.err").write_text("".join(err))
    return {"returncode": process.returncode, "stdout": "".join(out), "stderr": "".join(err), "run_dir": run_dir,
            "killed": killed, "seconds": time.monotonic() - started, "ended_ms": ended * 1000,
            "started_ms": (ended - (time.monotonic() - started)) * 1000}


def workers_during(cluster, launch: dict) -> list[dict]:
    return [n for n in cluster.nodes() if not n["head"] and n["start_ms"] <= launch["ended_ms"]]


def test_the_launch_finishes_and_plans_the_nodes_it_gets(main_launch):
    assert main_launch["returncode"] == 0, main_launch["stderr"][-4000:]
    plan = [line for line in main_launch["stdout"].splitlines() if line.startswith("  cluster:")]
    assert plan[0].startswith("  cluster: 2 trial(s) per gpu_worker node, 2 per GPU") and "on 2 node(s)" in plan[0]
    assert "2 of 2 trial(s) at once on 1 node(s)" in plan[1]  # the retrain phase packs onto one node
    print(f"\nmain launch: {main_launch['seconds']:.0f}s; node killed at {main_launch['killed'].get('at_s', 0):.0f}s")


def test_scales_from_zero_to_the_planned_nodes(cluster, main_launch):
    workers = workers_during(cluster, main_launch)
    assert all(n["start_ms"] >= main_launch["started_ms"] for n in workers)  # none before the launch
    peak = max(sum(1 for n in workers if n["start_ms"] <= t < (n["end_ms"] or 1e18)) for t in
               [n["start_ms"] for n in workers])
    assert peak == 2  # the plan's nodes for 4 search trials at 2 per node
    first = min(n["start_ms"] for n in workers) - main_launch["started_ms"]
    print(f"\nfirst worker node up {first / 1000:.0f}s after the launch started; {len(workers)} nodes in all")


def test_each_node_runs_the_trials_the_plan_says(cluster, main_launch):
    per_node, _ = fit(shipped_resources(), next(t for t in read_cluster_yaml(CLUSTER_YAML).node_types
                                                 if not t.head))
    search = trial_runs(main_launch["run_dir"], "search")
    first_nodes = [r.data.tags["msinet.nodes"].split(",")[0] for r in search]
    assert len(search) == 4 and sorted(first_nodes.count(n) for n in set(first_nodes)) == [per_node, per_node]
    heads = {n["node_id"] for n in cluster.nodes() if n["head"]}
    assert not heads & {n for r in trial_runs(main_launch["run_dir"]) for n in r.data.tags["msinet.nodes"].split(",")}
    for run in search:  # a logical GPU is no GPU: the study said device: cpu, so no GPU sharing is claimed
        assert run.data.tags["env.device"] == "cpu" and "msinet.gpu_shared" not in run.data.tags


def test_retrain_trials_pack_onto_one_node(main_launch):
    retrain = trial_runs(main_launch["run_dir"], "retrain")
    assert len(retrain) == 2
    assert len({r.data.tags["msinet.nodes"].split(",")[0] for r in retrain}) == 1


def test_a_node_killed_mid_trial_costs_no_epoch_and_no_run(main_launch):
    killed = main_launch["killed"]
    assert killed and killed["pids"], "the retrain trials' node was never killed"
    retrain = trial_runs(main_launch["run_dir"], "retrain")
    client = mlflow_client(main_launch["run_dir"])
    names = [r.data.tags["msinet.trial"] for r in trial_runs(main_launch["run_dir"])]
    assert len(names) == len(set(names)) == 6  # one MLflow run per trial, retried ones included
    moved = [r for r in retrain if r.data.tags["msinet.nodes"].split(",")[0] == killed["node"]]
    assert moved, "no retrain trial ran on the killed node"
    for run in moved:
        nodes = run.data.tags["msinet.nodes"].split(",")
        assert run.info.status == "FINISHED", run.data.tags.get("error")
        assert run.data.tags["msinet.retries"] == "1" and len(nodes) == 2 and nodes[1] != killed["node"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert steps == list(range(1, RETRAIN_EPOCHS + 1))  # every epoch once: none repeated, none lost
    # resumed from its checkpoint: the killed trial's second attempt began after the epoch it had reported
    trial_dir = next(p for p in (main_launch["run_dir"] / "tune").glob("smoke-*-retrain/*")
                     if p.is_dir() and killed["trial"] in p.name)
    results = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    attempts = [r["epoch"] for r in results if r.get("iterations_since_restore") == 1]
    assert len(attempts) == 2 and attempts[0] == 1 and attempts[1] >= killed["epoch"] >= KILL_AT_EPOCH, attempts
    assert results[-1]["epoch"] == RETRAIN_EPOCHS


def test_the_gpu_time_held_is_recorded(main_launch):
    client = mlflow_client(main_launch["run_dir"])
    runs = trial_runs(main_launch["run_dir"])
    share = shipped_resources()["gpu"]
    for run in runs:  # the share times the time the trial's actor ran: about the run's own wall time
        wall_h = (run.info.end_time - run.info.start_time) / 3.6e6
        assert 0 < run.data.metrics["gpu_hours"] < share * (wall_h + 60 / 3600)
        if run.data.tags["msinet.retries"] == "0":  # a retried run's wall time also holds the time it was down
            assert run.data.metrics["gpu_hours"] > share * wall_h * 0.5
    parent = client.search_runs([runs[0].info.experiment_id], "tags.`msinet.role` = 'launch'")[0]
    total = sum(r.data.metrics["gpu_hours"] for r in runs)
    assert parent.data.metrics["gpu_hours"] == pytest.approx(total)
    assert parent.data.metrics["gpu_hours/search"] + parent.data.metrics["gpu_hours/retrain"] == pytest.approx(total)
    assert f"GPU-hours held (GPU share x time each trial ran): {total:.3f}" in main_launch["stdout"]


# --- a GPU without CUDA -----------------------------------------------------------------------------------


def test_a_trial_holding_a_gpu_without_cuda_fails_at_once(cluster, main_launch, tmp_path):
    started = time.monotonic()
    result = cluster.launch("--study", "search", "--scale", "smoke", "--synthetic", "--run-dir", str(tmp_path),
                            *resources_flag("search"), "--set", "search.num_samples=1",
                            "--set", "search.max_failures=0", timeout=300)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]  # every trial failed
    assert "NoCudaError: this trial holds 0.5 GPU but CUDA is not available on its node" in result.stderr
    run = trial_runs_of(tmp_path, "search")[0]
    assert run.info.status == "FAILED" and "device: cpu" in run.data.tags["error"]
    assert "epoch" not in run.data.metrics  # not one step was taken
    print(f"\nGPU without CUDA: the launch failed in {took:.0f}s")


def trial_runs_of(run_dir, study: str) -> list:
    client = mlflow_client(run_dir)
    experiment = client.get_experiment_by_name(study)
    return client.search_runs([experiment.experiment_id], "tags.`msinet.role` = 'trial'")


# --- and back to zero --------------------------------------------------------------------------------------


def test_scales_back_to_zero_after_the_idle_timeout(cluster, main_launch):
    since = time.monotonic()
    took = cluster.wait_for_workers(0, timeout=IDLE_TIMEOUT_MINUTES * 60 + 120)
    nodes = [n for n in cluster.nodes() if not n["head"]]
    killed = main_launch["killed"]["node"]
    for node in nodes:  # the autoscaler stopped every node it had not lost
        if node["node_id"] != killed:
            assert node["death"] == "EXPECTED_TERMINATION", node
    print(f"\nback to zero {took:.0f}s after the last test's launch (idle timeout {IDLE_TIMEOUT_MINUTES * 60:.0f}s);"
          f" waited {time.monotonic() - since:.0f}s", file=sys.stderr)
