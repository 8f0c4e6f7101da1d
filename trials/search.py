"""The search trial: TCM architecture search over the MSI space (docs/method.md, Search with TCM).

Per iteration, as the authors' code runs it: the weights' gradients are zeroed; a batch is drawn from the
valid stream (one continuous stream of full passes across epochs); except at iteration 0 of every epoch,
one first-order architecture step backpropagates the valid loss (into every parameter by default, into
alpha alone with `valid_grad_to_weights: false`) and steps alpha; then the train loss is backpropagated,
adding to the weights' gradients, and the weights step. Every epoch reports the losses, the current
genotype, the entropy of softmax(alpha) and softmax(alpha) itself (`alpha/weights`, 12 x 4: how decided each
slot is, analysis.margins); every `eval_interval` epochs the supernet's `val/...` metrics on held-out training
ids. Outputs: the final genotype and the alpha history (array and long table).
"""

from __future__ import annotations

import csv
import itertools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import spaces
from spaces import latency
from spaces.genotype import OPERATIONS
from trials.config import TrialConfig
from trials.data import Sample
from trials.data.batches import training_batches
from trials.data.loaders import BatchStream
from trials.data.order import halving_order
from trials.data.splits import load_splits
from trials.evaluation.scoring import refresh_validation
from trials.runtime.checkpoint import read_state, write_state
from trials.runtime.device import allocate_grads, autocast, compiled, to_device
from trials.runtime.divergence import DivergenceWatch
from trials.runtime.rng import rng_state, set_rng_state
from trials.runtime.schedules import warmup_multistep
from trials.runtime.session import TuneSession
from trials.runtime.startup import cost_table, start_trial


def run_search(config: dict[str, Any] | TrialConfig, session=None) -> dict[str, Any]:
    """Search, validate every `eval_interval` epochs; returns the final metrics with the genotype."""
    cfg, session, device, workers = start_trial("search", config, session)

    splits = load_splits(cfg)
    split = spaces.tcm_split if cfg.supervision == "tcm" else spaces.classification_split
    ordered = halving_order(splits.train, splits.source.listed, cfg.halving_order, cfg.seed)
    train_side, valid_side = ([Sample(*s) for s in side] for side in split(ordered))
    model = spaces.Supernet().to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    train_criterion, valid_criterion = _criteria(cfg, train_side, valid_side, device)

    weight_params = model.weight_parameters() + list(train_criterion.parameters())
    optimizer = torch.optim.SGD(weight_params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = warmup_multistep(optimizer, cfg.warmup_epochs, cfg.warmup_factor, cfg.milestones, cfg.lr_gamma)
    table = cost_table(cfg)
    penalty = latency.latency_penalty(cfg.latency_weight, table) if cfg.latency_weight > 0 else None
    architect = spaces.Architect(model, valid_criterion, lr=cfg.arch_lr, weight_decay=cfg.arch_weight_decay,
                                 milestones=cfg.arch_milestones, grad_to_weights=cfg.valid_grad_to_weights,
                                 penalty=None if penalty is None else lambda: penalty(torch.softmax(model.alpha, -1)),
                                 loss=side_loss(model, valid_criterion, cfg, device))
    train, valid = (training_batches(side, cfg, cfg.seed + i, workers, device)
                    for i, side in enumerate((train_side, valid_side)))
    valid_stream = BatchStream(valid)

    start_epoch, last_val, history = 0, {}, []
    restored = session.restore()
    if restored is not None:
        state = read_state(restored)
        model.load_state_dict(state["model"])
        train_criterion.load_state_dict(state["train_criterion"])
        valid_criterion.load_state_dict(state["valid_criterion"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        architect.optimizer.load_state_dict(state["arch_optimizer"])
        architect.scheduler.load_state_dict(state["arch_scheduler"])
        set_rng_state(state["rng"])
        valid_stream.load_state(state["valid_stream"])
        start_epoch, last_val, history = state["epoch"], state["last_val"], state["alpha_history"]

    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        train.sampler.set_epoch(epoch)
        losses = search_epoch(model, train, valid_stream, architect, train_criterion, optimizer, cfg, device, epoch)
        scheduler.step()
        architect.epoch_end()
        probabilities = model.arch_weights().cpu().numpy()
        history.append(probabilities)
        genotype = model.genotype()
        metrics = {"epoch": epoch + 1, **losses, "lr": optimizer.param_groups[0]["lr"],
                   "arch_lr": architect.optimizer.param_groups[0]["lr"], "genotype": str(genotype),
                   "alpha/entropy": alpha_entropy(probabilities), "alpha/weights": probabilities.round(6).tolist(),
                   "epoch_seconds": time.perf_counter() - started,
                   "supervision": cfg.supervision, **latency_metrics(model, genotype, table, penalty)}
        last_val = refresh_validation(model, splits, cfg, device, workers, epoch + 1, last_val)
        metrics.update(last_val)  # carried between evaluations so schedulers always see the metric
        state = {"model": model.state_dict(), "train_criterion": train_criterion.state_dict(),
                 "valid_criterion": valid_criterion.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "arch_optimizer": architect.optimizer.state_dict(),
                 "arch_scheduler": architect.scheduler.state_dict(), "rng": rng_state(),
                 "valid_stream": valid_stream.state(), "epoch": epoch + 1,
                 "last_val": last_val, "alpha_history": history, "config": cfg.to_dict()}
        with tempfile.TemporaryDirectory(prefix="msinet-search-") as tmp:
            write_state(state, Path(tmp))
            write_search_outputs(Path(tmp), genotype, history)
            session.report(metrics, Path(tmp))
    return metrics


def search_epoch(model, train, valid_batches: Iterator, architect, train_criterion, optimizer, cfg: TrialConfig,
                 device, epoch: int) -> dict[str, float]:
    """One pass of the train side; every iteration draws a valid batch, all but the first step alpha. The
    loss sums and the divergence watch stay on the device: the host reads them once per epoch."""
    model.train()
    train_loss = side_loss(model, train_criterion, cfg, device)
    allocate_grads(optimizer)
    watch = DivergenceWatch([*model.parameters(), *model.buffers()], epoch + 1, optimizer.param_groups[0]["lr"],
                            names=("architecture", "weight"))
    batches = itertools.islice(train, cfg.iters_per_epoch) if cfg.iters_per_epoch else train
    sums = {"weight": torch.zeros((), device=device), "architecture": torch.zeros((), device=device)}
    steps = arch_steps = 0
    for iteration, train_batch in enumerate(batches):
        losses = search_step(train_loss, architect, optimizer, train_batch, next(valid_batches), iteration > 0, cfg,
                             device)
        watch.record(losses)
        for name, value in losses.items():
            sums[name] = sums[name] + value
        arch_steps += "architecture" in losses
        steps += 1
    watch.read()
    if steps == 0:
        raise RuntimeError("the search's train side produced no batch: too few identities for one P x K batch")
    weight, architecture = torch.stack([sums["weight"], sums["architecture"]]).tolist()
    out = {"loss/weight": weight / steps}
    if arch_steps:
        out["loss/architecture"] = architecture / arch_steps
    return out


def search_step(train_loss, architect, optimizer, train_batch, valid_batch, arch_step: bool, cfg: TrialConfig,
                device) -> dict[str, torch.Tensor]:
    """One iteration, as the authors run it (docs/method.md): the weights' gradients are zeroed; when
    `arch_step`, the architecture step backpropagates the valid loss (into every parameter by default) and
    steps alpha; then the train loss is backpropagated, adding to the weights' gradients, and the weights
    step. Returns the loss terms, on the device.

    The two backwards cannot be merged into one of the summed loss: the train forward must see the alpha
    that the architecture step produced (and the BN statistics the valid forward left). So the weights'
    gradients are zeroed in place, never set to None (`allocate_grads`): each backward adds into the
    parameters' own gradient tensors, also when a CUDA graph replays the compiled passes."""
    optimizer.zero_grad(set_to_none=False)
    losses = {}
    if arch_step:
        v_inputs, v_pids, *_ = valid_batch
        with autocast(device, cfg.amp):
            losses["architecture"] = architect.step(to_device(v_inputs, device, cfg.channels_last),
                                                    to_device(v_pids, device))
    inputs, pids, *_ = train_batch
    loss = train_loss(to_device(inputs, device, cfg.channels_last), to_device(pids, device))
    loss.backward()
    optimizer.step()
    losses["weight"] = loss.detach()
    return losses


def side_loss(model, criterion, cfg: TrialConfig, device):
    """(images, targets) -> criterion(model(images), targets): one side's forward and loss. Under `compile`
    one graph (and its backward, where the memory moves its prototypes) replayed as a CUDA graph on CUDA."""
    def loss(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with autocast(device, cfg.amp):
            features = model(images)
        return criterion(features.to(torch.promote_types(features.dtype, torch.float32)), targets)  # fp32 at least

    return compiled(loss, cfg.compile, cfg.compile_backend, device)


def latency_metrics(model: spaces.Supernet, genotype: spaces.Genotype, table: dict[str, Any],
                    penalty=None) -> dict[str, Any]:
    """`latency/ms`: the table's prediction for the current genotype; `latency/expected_ms`: under
    softmax(alpha); both per image of the table's batch. `loss/latency`: the penalty, when there is one."""
    with torch.no_grad():
        weights = model.arch_weights()
        metrics: dict[str, Any] = {"latency/ms": latency.predict_ms(genotype, table) / table["batch"],
                                   "latency/expected_ms": float(latency.expected_ms(weights, table)) / table["batch"],
                                   "latency/table": table["key"]}
        if penalty is not None:
            metrics["loss/latency"] = float(penalty(weights))
    return metrics


def alpha_entropy(probabilities: np.ndarray) -> float:
    """Mean entropy of softmax(alpha) over the 12 slots, in nats: log 4 at start, 0 when decided."""
    p = np.clip(probabilities, 1e-12, 1.0)
    return float(-(p * np.log(p)).sum(axis=1).mean())


def write_search_outputs(directory: Path, genotype: spaces.Genotype, history: list[np.ndarray]) -> None:
    """genotype.json, alpha_history.npy (epochs x 12 x 4) and alpha_history.csv (one row per weight)."""
    (directory / "genotype.json").write_text(genotype.to_json())
    array = np.stack(history) if history else np.zeros((0, 12, len(OPERATIONS)))
    np.save(directory / "alpha_history.npy", array)
    with open(directory / "alpha_history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "slot", "cell", "step", "operation", "weight"])
        for epoch, probabilities in enumerate(array, start=1):
            for slot, row in enumerate(probabilities):
                for op, weight in zip(OPERATIONS, row, strict=True):
                    writer.writerow([epoch, slot, slot // 2, slot % 2 + 1, op, f"{weight:.6f}"])


def _criteria(cfg: TrialConfig, train_side: list[Sample], valid_side: list[Sample], device):
    if cfg.supervision == "classification":
        head = spaces.ClassificationHead(spaces.num_ids(train_side)).to(device)
        return head, head
    return tuple(  # PK batches: each id's K images move its prototype in K vectorised rounds
        spaces.PrototypeMemory(spaces.num_ids(side), temperature=cfg.memory_temperature,
                               momentum=cfg.memory_momentum, images_per_id=cfg.instances).to(device)
        for side in (train_side, valid_side)
    )


def trainable(config: dict[str, Any]) -> None:
    """Ray Tune entry point: the same trial, reporting and checkpointing through Tune's session."""
    run_search(config, TuneSession())


if __name__ == "__main__":
    from trials.runtime.cli import main

    main("search", run_search)
