"""A small study store, logged through the real MLflow API exactly as the platform's contract says
(analysis/README.md): study `nas` with an older and a latest launch; the latest holds search trials with α
histories, retrains in groups tcm / classification / random / published, cross-domain retrains per SAM mode,
a FAILED, a RUNNING and an early-stopped trial. Study `empty` has an experiment but no launch; study `idle`
has a launch without trials. Built once per session; `StudyStore.trials` holds what was logged.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis.margins import decision_text

OPERATIONS = ("none", "exc", "ag", "cross_att")
MSMT = "ag-ag/exc-ag/cross_att-ag/ag-none/ag-cross_att/exc-cross_att"
SEARCHED = "exc-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-cross_att"
T0 = 1_767_000_000_000  # ms; every run starts a few minutes after the previous one
EPOCHS = 3


@dataclass
class Trial:
    """What one child run was given, so tests compare the analysis against it."""

    name: str
    phase: str
    kind: str
    group: str | None
    genotype: str | None
    params: dict[str, str]
    final: dict[str, float]
    status: str = "FINISHED"
    error: str | None = None
    stopped_early: bool = False
    space: str = ""
    wall_seconds: float | None = None
    alpha: np.ndarray | None = None
    cmc: dict[str, list[float]] = field(default_factory=dict)
    run_id: str = ""


@dataclass
class StudyStore:
    uri: str
    root: Path
    experiment_id: str
    parent_run_id: str
    old_parent_run_id: str
    trials: dict[str, Trial]

    def by_kind(self, kind: str, status: str | None = None) -> list[Trial]:
        return [t for t in self.trials.values() if t.kind == kind and (status is None or t.status == status)]


def alpha_towards(genotype: str, epochs: int = EPOCHS) -> np.ndarray:
    """softmax(α) per epoch drifting from uniform towards the genotype's operations (epochs x 12 x 4)."""
    chosen = [OPERATIONS.index(op) for group in genotype.split("/") for op in group.split("-")]
    history = np.full((epochs, 12, 4), 0.0)
    for epoch in range(epochs):
        top = 0.25 + 0.2 * (epoch + 1)
        history[epoch] = (1 - top) / 3
        history[epoch, np.arange(12), chosen] = top
    return history


def _trials() -> list[Trial]:
    search_space = "lr,arch_lr"
    retrain_space = "lr,triplet_margin"
    trials = []
    for i, (genotype, val) in enumerate([(SEARCHED, 0.41), (MSMT, 0.47),
                                         ("exc-ag/none-none/none-cross_att/ag-ag/exc-exc/none-ag", 0.39)]):
        trials.append(Trial(f"search/a_{i:05d}", "search", "search", "tcm", genotype,
                            {"kind": "search", "genotype": "supernet", "supervision": "tcm", "lr": f"0.0{2 + i}",
                             "arch_lr": "0.002", "sam_mode": "none", "target_dataset": "None"},
                            {"val/mAP": val, "loss/weight": 2.0 - i / 10, "alpha/entropy": 0.9},
                            space=search_space, alpha=alpha_towards(genotype)))

    def retrain(name, group, spec, genotype, source, val, size, macs, **extra):
        phase = extra.pop("phase", "retrain")
        final = {"val/mAP": val, "source/mAP": source, "source/rank1": min(source + 0.2, 1.0),
                 "source/rank5": min(source + 0.3, 1.0), "source/rank10": min(source + 0.35, 1.0),
                 "source/mINP": source / 2, "params": size + 12_288, "params_no_classifier": size, "macs": macs,
                 "val/mAP_ci_low": val - 0.1, "val/mAP_ci_high": val + 0.1, "val/num_valid_queries": 30,
                 "val/num_valid_ids": 15, **extra.pop("final", {})}
        cmc = {"source/cmc": [round(min(source + 0.2 + 0.05 * r, 1.0), 3) for r in range(10)]}
        if "target/mAP" in final:
            cmc["target/cmc"] = [round(min(final["target/mAP"] + 0.1 + 0.05 * r, 1.0), 3) for r in range(10)]
        config = {"kind": "retrain", "genotype": spec, "supervision": "tcm", "lr": "0.065", "triplet_margin": "0.3",
                  "sam_mode": "none", "target_dataset": "None", "epochs": str(EPOCHS), **extra.pop("config", {})}
        return Trial(name, phase, "retrain", group, genotype, config, final, space=retrain_space, cmc=cmc, **extra)

    trials += [
        retrain("retrain/b_00000", "tcm", SEARCHED, SEARCHED, 0.62, 0.70, 2_300_000, 1.10e9),
        retrain("retrain/b_00001", "tcm", MSMT, MSMT, 0.60, 0.72, 2_328_035, 1.15e9, config={"lr": "0.05"}),
        retrain("retrain/b_00002", "classification", SEARCHED, SEARCHED, 0.55, 0.61, 2_300_000, 1.10e9,
                config={"supervision": "classification", "triplet_margin": "0.5"}),
        retrain("retrain/b_00003", "classification", SEARCHED, SEARCHED, 0.52, 0.58, 2_400_000, 1.20e9,
                config={"supervision": "classification"}, stopped_early=True),
        retrain("retrain/b_00004", "random", "random:1", "none-none/exc-exc/ag-ag/none-ag/exc-none/ag-exc",
                0.41, 0.50, 2_100_000, 0.95e9),
        retrain("retrain/b_00005", "random", "random:2", "ag-exc/none-none/exc-ag/ag-ag/none-exc/exc-exc",
                0.44, 0.49, 2_500_000, 1.30e9),
        retrain("retrain/b_00006", "published", "msmt", MSMT, 0.58, 0.66, 2_328_035, 1.15e9),
    ]
    for i, (mode, target) in enumerate([("none", 0.20), ("pos", 0.24), ("neg", 0.22), ("pos_neg", 0.27)]):
        trials.append(retrain(f"cross/c_{i:05d}", None, "msmt", MSMT, 0.50 + i / 100, 0.60 + i / 100, 2_328_035,
                              1.15e9, phase="cross_domain",
                              config={"sam_mode": mode, "target_dataset": "veri", "sam_ratio": "2.0"},
                              final={"target/mAP": target, "target/rank1": target + 0.2, "target/rank5": target + 0.3,
                                     "target/mINP": target / 2}))
    trials.append(Trial("retrain/b_00007", "retrain", "retrain", "tcm", None,
                        {"kind": "retrain", "genotype": SEARCHED, "lr": "0.3", "triplet_margin": "0.3"},
                        {"val/mAP": 0.05}, status="FAILED", error="loss is NaN at epoch 2 | diverged",
                        space=retrain_space))
    trials.append(Trial("retrain/b_00008", "retrain", "retrain", "tcm", SEARCHED,
                        {"kind": "retrain", "genotype": SEARCHED, "lr": "0.065", "triplet_margin": "0.3"},
                        {"val/mAP": 0.30}, status="RUNNING", space=retrain_space))
    return trials


def _log_trial(client: MlflowClient, experiment_id: str, parent: str, launch: str, trial: Trial,
               start: int) -> None:
    tags = {"mlflow.parentRunId": parent, "msinet.role": "trial", "msinet.trial": trial.name,
            "msinet.phase": trial.phase, "msinet.kind": trial.kind, "msinet.launch": launch,
            "msinet.space": trial.space, "env.device": "cpu", "env.torch": "2.14.1", "env.ray": "2.60.0",
            "env.mlflow": "3.17.2", "env.hostname": "test-host", "env.ray_node": "node-1"}
    if trial.group:
        tags["msinet.group"] = trial.group
    if trial.genotype:
        tags["genotype"] = trial.genotype
    if trial.alpha is not None:  # what the platform tags a search trial's run with (platform/study_notes.py)
        tags["msinet.genotype_margins"] = decision_text(trial.genotype, trial.alpha[-1])
    run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=trial.name)
    trial.run_id = run.info.run_id
    epochs = EPOCHS if trial.status != "RUNNING" else 1
    metrics = []
    for epoch in range(1, epochs + 1):
        values = {"epoch": epoch, "loss": 3.0 - epoch / 2, "lr": 0.01, "epoch_seconds": 1.5,
                  "val/mAP": trial.final["val/mAP"] * epoch / epochs}
        metrics += [Metric(key, float(value), start + 1000 * epoch, epoch) for key, value in values.items()]
    metrics += [Metric(key, float(value), start + 1000 * epochs, epochs) for key, value in trial.final.items()
                if key != "val/mAP"]
    trial.final["epoch"] = epochs
    client.log_batch(trial.run_id, metrics=metrics, params=[Param(k, v) for k, v in trial.params.items()])
    artefacts = {}
    if trial.genotype:
        artefacts["genotype.json"] = json.dumps({"ops": [op for g in trial.genotype.split("/") for op in g.split("-")],
                                                 "compact": trial.genotype}).encode()
    if trial.alpha is not None:
        buffer = io.BytesIO()
        np.save(buffer, trial.alpha)
        artefacts["alpha_history.npy"] = buffer.getvalue()
    if trial.cmc:
        artefacts["metrics.json"] = json.dumps({**trial.final, **trial.cmc, "genotype": trial.genotype}).encode()
        artefacts.update(_views(trial))
    for name, data in artefacts.items():
        _log_bytes(client, trial.run_id, name, data)
    if trial.error:
        client.set_tag(trial.run_id, "error", trial.error)
    if trial.stopped_early:
        client.set_tag(trial.run_id, "msinet.stopped_early", "true")
    if trial.status != "RUNNING":
        wall = 60_000 + 1000 * len(trial.name)
        client.set_terminated(trial.run_id, trial.status, end_time=start + wall)
        trial.wall_seconds = wall / 1000


def _views(trial: Trial) -> dict[str, bytes]:
    """What a retrain logs at its last epoch: two PNG grids and the record of their queries (seeded 4, 9;
    the worst differs per trial)."""
    from PIL import Image

    shade = sum(map(ord, trial.name)) % 200
    pictures = {}
    for name, size in (("rank_lists.png", (360, 300)), ("activation_maps.png", (180, 300))):
        buffer = io.BytesIO()
        Image.new("RGB", size, (shade, 120, 200 - shade)).save(buffer, format="PNG")
        pictures[name] = buffer.getvalue()
    worst = 20 + len(trial.name) % 5
    queries = [{"index": 4, "reason": "seeded", "ap": 0.5, "gallery": []},
               {"index": 9, "reason": "seeded", "ap": 0.4, "gallery": []},
               {"index": worst, "reason": "worst AP", "ap": 0.01, "gallery": []}]
    record = {"dataset": "market1501", "seed": 0, "top_k": 8, "queries": queries}
    return {**pictures, "rank_lists.json": json.dumps(record).encode()}


def _log_bytes(client: MlflowClient, run_id: str, name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        client.log_artifact(run_id, str(path))


def _parent(client: MlflowClient, experiment_id: str, study: str, launch: str, start: int,
            test_metric_optimised: bool = False) -> str:
    tags = {"msinet.role": "launch", "msinet.study": study, "msinet.launch": launch, "msinet.scale": "smoke",
            "msinet.metric": "val/mAP", "msinet.mode": "max",
            "msinet.test_metric_optimised": "true" if test_metric_optimised else "false"}
    return client.create_run(experiment_id, start_time=start, tags=tags, run_name=f"{study}-{launch}").info.run_id


def build_store(root: Path) -> StudyStore:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiments = {name: client.create_experiment(name, artifact_location=(root / "artifacts" / name).as_uri())
                   for name in ("nas", "empty", "idle")}
    nas = experiments["nas"]
    old = _parent(client, nas, "nas", "L1", T0)
    old_trial = Trial("retrain/old_00000", "retrain", "retrain", "tcm", MSMT, {"kind": "retrain", "genotype": "msmt"},
                      {"val/mAP": 0.99, "source/mAP": 0.99})
    _log_trial(client, nas, old, "L1", old_trial, T0 + 1000)
    client.set_terminated(old, "FINISHED", end_time=T0 + 100_000)
    parent = _parent(client, nas, "nas", "L2", T0 + 3_600_000)
    trials = _trials()
    for i, trial in enumerate(trials):
        _log_trial(client, nas, parent, "L2", trial, T0 + 3_600_000 + 1000 * (i + 1))
    for name, text in (("study.yaml", "name: nas\n"), ("plan.json", "{}"), ("leaderboard.csv", "trial\n")):
        client.log_text(parent, text, name)
    client.set_terminated(parent, "FINISHED", end_time=T0 + 7_200_000)
    _parent(client, experiments["idle"], "idle", "I1", T0, test_metric_optimised=True)
    return StudyStore(uri, root, nas, parent, old, {t.name: t for t in trials})


@pytest.fixture(scope="session")
def study_store(tmp_path_factory) -> StudyStore:
    return build_store(tmp_path_factory.mktemp("analysis-store"))


@pytest.fixture(scope="session")
def study_runs(study_store):
    from analysis.runs import load_runs

    return load_runs(study_store.uri, "nas")


@pytest.fixture(scope="session")
def written_report(study_store, tmp_path_factory) -> Path:
    """The report of the latest `nas` launch, written (and logged to its parent run) once."""
    from analysis.report import write_report

    return write_report(study_store.uri, "nas", out=tmp_path_factory.mktemp("report"))
