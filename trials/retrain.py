"""The retrain trial: MSINet from a genotype, trained with the ReID recipe of docs/method.md.

`run_retrain(config)` is a plain function of a config dict: it reports `val/...` every `eval_interval`
epochs, checkpoints every epoch, resumes from the session's checkpoint, and ends with the test splits
(`source/...`, `target/...`), the parameter count, MACs and the measured latency (`latency/...`).
`trainable` is the same under Ray Tune.
"""

from __future__ import annotations

import itertools
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import spaces
from spaces import latency
from trials.config import ConfigError, TrialConfig
from trials.data.batches import training_batches
from trials.data.splits import load_splits
from trials.evaluation.network_views import draw_network_views
from trials.evaluation.scoring import check_test_rerank, refresh_validation, score_tests
from trials.losses import reid_head_loss
from trials.runtime.checkpoint import read_state, write_state
from trials.runtime.device import allocate_grads, autocast, compiled, to_device
from trials.runtime.divergence import DivergenceWatch
from trials.runtime.latency import measure_latency
from trials.runtime.rng import rng_state, set_rng_state
from trials.runtime.schedules import warmup_multistep
from trials.runtime.session import TuneSession
from trials.runtime.startup import cost_table, start_trial


def run_retrain(config: dict[str, Any] | TrialConfig, session=None) -> dict[str, Any]:
    """Train, validate, test; returns the final metrics (also the last report)."""
    cfg, session, device, workers = start_trial("retrain", config, session)

    splits = load_splits(cfg)
    check_test_rerank(splits, cfg)  # a re-ranking that cannot fit fails now, not after training
    genotype = resolve_retrain_genotype(cfg.genotype, cfg.seed)
    model = spaces.build_msinet(genotype, splits.num_classes, sam_mode=cfg.sam_mode, vehicle=cfg.vehicle)
    cost = spaces.model_cost(model, (3, *cfg.image_size))
    pretrained_report = spaces.load_weights(model, read_pretrained(cfg.pretrained)) if cfg.pretrained else None
    model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
    )
    scheduler = warmup_multistep(optimizer, cfg.warmup_epochs, cfg.warmup_factor, cfg.milestones, cfg.lr_gamma)
    loader = training_batches(splits.train, cfg, cfg.seed, workers, device)

    start_epoch, last_val = 0, {}
    restored = session.restore()
    if restored is not None:
        state = read_state(restored)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start_epoch, last_val = state["epoch"], state["last_val"]

    static = {"genotype": str(genotype), "params": cost["params"], "params_no_classifier":
              cost["params_no_classifier"], "macs": cost["macs"], "num_classes": splits.num_classes}
    table = cost_table(cfg)  # the prediction beside the measurement at the end
    static.update({"latency/ms": latency.predict_ms(genotype, table) / table["batch"], "latency/table": table["key"]})
    if pretrained_report is not None:
        static["pretrained_missing"] = len(pretrained_report.missing)
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        losses, images = train_epoch(model, loader, optimizer, cfg, device, epoch)
        scheduler.step()
        seconds = time.perf_counter() - started
        metrics = {"epoch": epoch + 1, **losses, "lr": optimizer.param_groups[0]["lr"],
                   "epoch_seconds": seconds, "images_per_second": images / seconds, **static}
        last_epoch = epoch + 1 == cfg.epochs
        last_val = refresh_validation(model, splits, cfg, device, workers, epoch + 1, last_val)
        metrics.update(last_val)  # carried between evaluations so schedulers always see the metric
        features: dict = {}  # the last epoch's test features: scored, then drawn from (extracted once)
        if last_epoch or (cfg.test_interval and (epoch + 1) % cfg.test_interval == 0):
            metrics.update(score_tests(model, splits, cfg, device, workers, features))
        if last_epoch:  # a short separate step once training is over: measured speed beside params and MACs
            metrics.update(measure_latency(model, cfg.image_size, device))
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": rng_state(), "epoch": epoch + 1,
                 "last_val": last_val, "config": cfg.to_dict()}
        with tempfile.TemporaryDirectory(prefix="msinet-retrain-") as tmp:
            write_state(state, Path(tmp))
            spaces.save_checkpoint(model, Path(tmp) / "model.pt", genotype, config=cfg.to_dict())
            (Path(tmp) / "genotype.json").write_text(genotype.to_json())
            if last_epoch:  # rank_lists.png, activation_maps.png: logged to MLflow with the final artefacts
                draw_network_views(model, splits, cfg, device, workers, Path(tmp), features)
            session.report(metrics, Path(tmp))
    return metrics


def train_epoch(model, loader, optimizer, cfg: TrialConfig, device, epoch: int) -> tuple[dict[str, float], int]:
    """One pass of PK batches; returns the mean of each loss term and the number of images seen. The loss
    sums and the divergence watch stay on the device: the host reads them once per epoch."""
    model.train()
    loss_terms = retrain_terms(model, cfg, device)
    allocate_grads(optimizer)
    watch = DivergenceWatch([*model.parameters(), *model.buffers()], epoch + 1, optimizer.param_groups[0]["lr"])
    sums: dict[str, torch.Tensor] = {}
    steps = images = 0
    batches = itertools.islice(loader, cfg.iters_per_epoch) if cfg.iters_per_epoch else loader
    for inputs, pids, *_rest in batches:
        terms = retrain_step(loss_terms, optimizer, inputs, pids, cfg, device)
        watch.record(terms)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach().float()
        steps += 1
        images += inputs.shape[0]
    watch.read()
    if steps == 0:
        raise RuntimeError("the training loader produced no batch: too few identities for one P x K batch")
    means = {f"loss/{k}": v / steps for k, v in zip(sums, torch.stack(list(sums.values())).tolist(), strict=True)}
    means["loss"] = sum(means.values())
    return means, images


def retrain_step(loss_terms, optimizer, inputs: torch.Tensor, pids: torch.Tensor, cfg: TrialConfig,
                 device) -> dict[str, torch.Tensor]:
    """One iteration: gradients zeroed in place (`allocate_grads`), the loss terms of the batch, their sum
    backpropagated, one SGD step. Returns the terms, on the device."""
    optimizer.zero_grad(set_to_none=False)
    terms = loss_terms(to_device(inputs, device, cfg.channels_last), to_device(pids, device))
    sum(terms.values()).backward()
    optimizer.step()
    return terms


def retrain_terms(model, cfg: TrialConfig, device):
    """(inputs, pids) -> the loss terms: the forward and every loss as one function, one graph (and its
    backward) under `compile`, replayed as a CUDA graph on CUDA."""
    def terms(inputs: torch.Tensor, pids: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(device, cfg.amp):
            out = model(inputs)
        return retrain_losses(out, pids, cfg)

    return compiled(terms, cfg.compile, cfg.compile_backend, device)


def retrain_losses(out, pids: torch.Tensor, cfg: TrialConfig) -> dict[str, torch.Tensor]:
    """Global head + part head (CE with label smoothing + batch-hard triplet), + ratio x SAM when on."""
    ce_g, tri_g = reid_head_loss(out.global_logits, out.global_feat, pids, cfg.label_smoothing,
                                 cfg.triplet_margin)
    ce_p, tri_p = reid_head_loss(out.part_logits, out.part_feat, pids, cfg.label_smoothing, cfg.triplet_margin)
    terms = {"ce_global": ce_g, "triplet_global": tri_g, "ce_part": ce_p, "triplet_part": tri_p}
    if out.sam is not None:
        terms["sam"] = cfg.sam_ratio * spaces.sam_loss(out.sam, pids, cfg.sam_mode)
    return terms


def resolve_retrain_genotype(spec: str, seed: int) -> spaces.Genotype:
    """`random` alone means a genotype drawn from the trial's seed: the random-architecture baseline. A genotype
    that cannot be read is a ConfigError (it fails the same way on every attempt)."""
    try:
        return spaces.resolve_genotype(f"random:{seed}" if spec == "random" else spec)
    except ValueError as error:
        raise ConfigError(f"genotype: {error}") from None


def read_pretrained(path: str) -> dict[str, torch.Tensor]:
    """The state dict of the weights a retrain starts from (ours, the authors' layout or a bare state dict);
    a file that is not one is a ConfigError naming it."""
    try:
        return spaces.msinet.extract_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"pretrained {path}: not a weights file to start from ({reason})") from None


def trainable(config: dict[str, Any]) -> None:
    """Ray Tune entry point: the same trial, reporting and checkpointing through Tune's session."""
    run_retrain(config, TuneSession())


if __name__ == "__main__":
    from trials.runtime.cli import main

    main("retrain", run_retrain)
