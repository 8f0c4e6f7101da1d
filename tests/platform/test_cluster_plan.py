"""The plan knows the cluster: how many trials share a node and a GPU, what idles, how many nodes, what it costs,
read offline from cluster.yaml (the simulated cluster in tests/cluster checks the same on Ray's autoscaler)."""

import re
from pathlib import Path

import pytest
import study_cost
import study_spec
import yaml
from study_cluster import INSTANCE_TYPES, ClusterError, NodeType, fit, layout, read_cluster_yaml
from study_cost import describe
from study_plan import placement

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
FULL_STUDIES = [name for name in study_spec.available() if study_spec.load_study(name).scale == "full"]


def test_the_instance_table_holds_every_type_cluster_yaml_names():
    text = CLUSTER_YAML.read_text()
    named = set(re.findall(r"\b([a-z]\d[a-z]*\.\d*x?large)\b", text)) | set(re.findall(r"\b(p4d\.24xlarge)\b", text))
    assert named and named <= set(INSTANCE_TYPES)
    shipped = read_cluster_yaml(CLUSTER_YAML)
    worker = next(t for t in shipped.node_types if not t.head)
    assert (worker.instance, worker.cpus, worker.gpus, worker.gpu_model) == ("g5.xlarge", 4, 1, "A10G")
    head = next(t for t in shipped.node_types if t.head)
    assert head.cpus == 0 and head.max_nodes == 1  # cluster.yaml's `resources: {"CPU": 0}` wins over m5.2xlarge's 8


@pytest.mark.parametrize("study", FULL_STUDIES)
def test_every_shipped_study_runs_at_least_two_trials_per_gpu_on_the_shipped_cluster(study):
    """What `--dry-run --cluster cluster.yaml` prints per phase (study_plan.placement), with no GPU share idle."""
    loaded = study_spec.load_study(study)
    cluster = read_cluster_yaml(CLUSTER_YAML)
    for phase in loaded.phases:
        placed = placement(loaded, phase, cluster)
        assert placed["layout"]["trials_per_node"] >= 2 and placed["layout"]["trials_per_gpu"] >= 2, phase.name
        assert placed["layout"]["idle_gpus_per_node"] == 0 and not placed["warnings"], placed
        assert describe(placed["cost"]).startswith("unknown device A10G: no estimate; for scale, on an NVIDIA H200")
    by_name = {p.name: p for p in loaded.phases}
    data_paths = {p.name: (by_name[p.configs["from"]] if p.configs else p).config.get("data_path", "loader")
                  for p in loaded.phases}  # a final phase retrains configurations of its source phase as they were
    if study != "cross_domain":  # the authors' PIL colour jitter: see cluster.yaml
        assert set(data_paths.values()) == {"resident"}, data_paths


def test_dry_run_prints_the_cluster_plan(launch):
    result = launch("--study", "nas", "--dry-run", "--cluster", str(CLUSTER_YAML))
    assert result.returncode == 0, result.stderr
    assert f"cluster: {CLUSTER_YAML} (read offline): head (m5.2xlarge: 0 CPU, 0 GPU, 32 GiB) head, up to 1; " \
           "gpu_worker (g5.xlarge: 4 CPU, 1 GPU A10G, 16 GiB), up to 8" in result.stdout
    layouts = [line for line in result.stdout.splitlines() if line.startswith("  cluster:")]
    assert layouts == [
        "  cluster: 2 trial(s) per gpu_worker node, 2 per GPU (limited by CPU and GPU); idle per node: 0 CPU, 0 GPU; "
        f"{n} of {total} trial(s) at once on {nodes} node(s)" for n, total, nodes in ((4, 8, 2), (4, 4, 2), (1, 1, 1))]
    costs = [line for line in result.stdout.splitlines() if line.startswith("  cost:")]
    assert len(costs) == 3 and "at most 24.4 GPU-hours, 12.2 h wall" in costs[0]  # 8 searches on MSMT17
    assert "warning" not in result.stderr


def test_the_full_studies_ask_one_shape_per_trial():
    """tests/cluster runs the smoke study at this shape, standing for every full study."""
    shapes = {(p.resources["cpu"], p.resources["gpu"]) for name in FULL_STUDIES
              for p in study_spec.load_study(name).phases}
    assert shapes == {(2.0, 0.5)}


def test_fit_layout_and_idle_gpu_warning():
    node = NodeType("gpu_worker", 4, 1, 8, "A10G")
    assert fit({"cpu": 4, "gpu": 0.5}, node) == (1, "CPU")
    assert fit({"cpu": 2, "gpu": 0.5}, node) == (2, "CPU and GPU")
    assert fit({"cpu": 1, "gpu": 0.5}, node) == (2, "GPU")
    assert fit({"cpu": 8, "gpu": 0}, node) == (0, "CPU")
    cluster = read_cluster_yaml(CLUSTER_YAML)
    spot = layout({"cpu": 1, "gpu": 0.25}, 10, 6, cluster)
    assert (spot.per_node, spot.per_gpu, spot.idle_cpus, spot.idle_gpus, spot.concurrent, spot.nodes) == (
        4, 4, 0, 0, 6, 2)
    assert layout({"cpu": 8, "gpu": 0}, 4, None, cluster) is None


@pytest.mark.slow
def test_a_phase_that_idles_half_a_gpu_is_warned_with_the_fix(launch):
    result = launch("--study", "in_domain", "--dry-run", "--cluster", str(CLUSTER_YAML),
                    "--set", "retrain.resources.cpu=4")
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if line.startswith("warning: phase 'retrain'"))
    assert "leaves 0.5 of the 1 GPU of each gpu_worker node idle" in warning
    assert "--set retrain.resources.cpu=2 fits 2 trials per node" in warning


@pytest.mark.slow
def test_an_impossible_request_is_refused_before_anything_runs(launch, tmp_path):
    result = launch("--study", "nas", "--dry-run", "--cluster", str(CLUSTER_YAML), "--run-dir", str(tmp_path),
                    "--set", "search.resources={cpu: 2, gpu: 2}")
    assert result.returncode == 2 and result.stderr.count("error:") == 1, result.stderr
    assert result.stderr.startswith("error: phase 'search' asks for 2 CPU + 2 GPU per trial, but no node of "
                                    f"{CLUSTER_YAML} (read offline) can hold one: the largest node type is "
                                    "gpu_worker (g5.xlarge: 4 CPU, 1 GPU A10G, 16 GiB)")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_cluster_file_with_an_unknown_instance_type_names_it(tmp_path, launch):
    raw = yaml.safe_load(CLUSTER_YAML.read_text())
    raw["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"] = "g4dn.xlarge"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ClusterError, match="node type gpu_worker: instance type 'g4dn.xlarge' is not in the table"):
        read_cluster_yaml(tmp_path / "c.yaml")
    raw["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 4, "GPU": 1}  # given: no table needed
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert next(t for t in read_cluster_yaml(tmp_path / "c.yaml").node_types if not t.head).cpus == 4
    result = launch("--study", "nas", "--dry-run", "--cluster", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2 and "--cluster" in result.stderr and "Traceback" not in result.stderr


def test_the_cost_comes_from_the_h200_figures_kept_in_benchmarks_results():
    rates = study_cost.measured_rates()
    assert set(rates) == {"NVIDIA H200"}
    h200 = rates["NVIDIA H200"]
    assert (round(h200["retrain"]), round(h200["search"]), h200["date"], h200["runs"]) == (922, 375, "2026-11-30", 2)
    from trials.config import make_config

    cfg = make_config("retrain", {"dataset": "market1501", "epochs": 10})
    images = 12936 * 0.9 * 10
    assert study_cost.images_per_trial(cfg) == pytest.approx(images)
    known = study_cost.estimate(cfg, trials=4, concurrent=2, gpu=0.5, device="H200", rates=rates)
    assert known["gpu_hours"] == pytest.approx(4 * images / h200["retrain"] / 3600)
    assert known["wall_hours"] == pytest.approx(2 * images / (h200["retrain"] * 0.5) / 3600)  # two waves
    assert "note" not in known
    unknown = study_cost.estimate(cfg, trials=4, concurrent=2, gpu=0.5, device="A10G", rates=rates)
    assert study_cost.describe(unknown).startswith("unknown device A10G: no estimate; for scale, on an NVIDIA H200")
    assert study_cost.estimate(cfg, 4, 2, 0.5, "A10G", {})["note"].startswith("unknown device A10G: no estimate")
    assert study_cost.estimate(cfg, 4, 2, 0.0, "A10G", rates) == {"note": "CPU trials: no GPU estimate"}
