"""Retrain and search trial throughput at full size (256x128) on one GPU, side by side, plus correctness checks.

Meant to run once on a lent GPU machine that has only torch/torchvision/numpy/scipy/PIL, so it imports only
`spaces` and `trials`. Every figure comes from the trials' own code: the retrain step is
`trials.retrain.train_epoch`, the search step `trials.search.search_epoch`, fed batches already on the device
so the variants (fp32, bf16, bf16 + channels_last, + SAM) compare the model alone; one more measurement goes
through the real `trials.loaders.train_loader` to show whether loading keeps up. Then one short real retrain
(and search) trial, and the bf16-vs-fp32 difference of the losses of one batch from the same weights.

Each section is timed with the device synchronised around it; a failing section is reported and the rest
still run; the JSON is rewritten after every section, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_timing import (  # noqa: E402, I001
    DeviceBatches,
    checked_device,
    environment,
    fmt,
    free,
    peak_mib,
    pk_labels,
    rates,
    runs,
    timed,
    widen,
)

import spaces  # noqa: E402
from trials.config import TrialConfig, make_config  # noqa: E402
from trials.data import synthesize  # noqa: E402
from trials.data.loaders import BatchStream, train_loader  # noqa: E402
from trials.data.splits import load_splits  # noqa: E402
from trials.retrain import retrain_losses, run_retrain, train_epoch  # noqa: E402
from trials.runtime.device import autocast, configure_backends  # noqa: E402
from trials.runtime.session import LocalSession  # noqa: E402
from trials.search import run_search, search_epoch  # noqa: E402

# name -> (amp, channels_last, sam_mode); the third is the trial default on CUDA.
RETRAIN_VARIANTS = {
    "fp32": (False, False, "none"),
    "bf16": (True, False, "none"),
    "bf16+cl": (True, True, "none"),
    "bf16+cl+sam": (True, True, "pos_neg"),
}
SEARCH_VARIANTS = {"fp32": (False, False), "bf16": (True, False), "bf16+cl": (True, True)}
SECTIONS = ("data", "retrain_on_device", "through_loader", "search_on_device", "precision", "retrain_trial",
            "search_trial")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=256, help="image height; width is half of it")
    parser.add_argument("--iters", type=int, default=50, help="timed iterations per repeat")
    parser.add_argument("--warmup", type=int, default=10, help="untimed iterations first (cuDNN autotuning)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    parser.add_argument("--ids", type=int, default=100, help="synthetic identities (half train, half test)")
    parser.add_argument("--ids-per-batch", type=int, default=16, help="P of the P x K batch")
    parser.add_argument("--instances", type=int, default=4, help="K of the P x K batch")
    parser.add_argument("--classes", type=int, default=751, help="classifier size for on-device batches "
                        "(Market-1501's training ids)")
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 15],
                        help="loader processes; the first is used for training through the loader and the trials")
    parser.add_argument("--trial-iters", type=int, default=20, help="iterations per epoch of the short trials")
    parser.add_argument("--tolerance", type=float, default=0.05, help="largest bf16-vs-fp32 relative loss gap")
    parser.add_argument("--data-dir", help="where to synthesize (reused if it already holds the same data)")
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections alone (data is always made)")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ timing


# ------------------------------------------------------------------------------------------------ inputs


def trial_config(args: argparse.Namespace, kind: str = "retrain", **values: Any) -> TrialConfig:
    base = {"height": args.height, "ids_per_batch": args.ids_per_batch, "instances": args.instances,
            "device": args.device, "workers": args.workers[0], "seed": 0}
    return make_config(kind, {**base, **values})


def describe(cfg: TrialConfig, device: torch.device) -> str:
    """The input size and batch, then what really runs on `device` (bf16 asked on a CPU runs fp32)."""
    h, w = cfg.image_size
    return f"{h}x{w}, batch {cfg.ids_per_batch * cfg.instances} ({cfg.ids_per_batch}x{cfg.instances}), " + runs(
        cfg, device)


def variant_of(cfg: TrialConfig) -> str:
    """The on-device variant with the same settings: the reference of a row measured another way."""
    settings = (cfg.amp, cfg.channels_last, cfg.sam_mode)
    return next(name for name, values in RETRAIN_VARIANTS.items() if values == settings)


# ------------------------------------------------------------------------------------------------ sections


def retrain_on_device(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The retrain step alone: batches already on the device, so only the model and losses are timed."""
    out = {}
    for name, (amp, channels_last, sam_mode) in RETRAIN_VARIANTS.items():
        free(device)
        cfg = trial_config(args, amp=amp, channels_last=channels_last, sam_mode=sam_mode)
        model, optimizer = build_retrain(cfg, args.classes, device)
        batch = cfg.ids_per_batch * cfg.instances
        inputs = torch.randn(batch, 3, *cfg.image_size, device=device)
        pids = pk_labels(cfg.ids_per_batch, cfg.instances, args.classes, seed=1).to(device)
        losses: dict[str, float] = {}

        def run(n: int, model=model, optimizer=optimizer, cfg=cfg, inputs=inputs, pids=pids, losses=losses) -> None:
            losses.update(train_epoch(model, [(inputs, pids)] * n, optimizer, cfg, device, 0)[0])

        print(f"retrain {name}: {describe(cfg, device)}, {args.classes} classes, random N(0,1) inputs on the device")
        result = rates(timed(run, args, device), args, batch)
        out[name] = {**result, "peak_mib": peak_mib(device), "loss": losses.get("loss"),
                     "config": describe(cfg, device), "runs": runs(cfg, device)}
        print(f"  {result['images_per_s']:.0f} images/s, {result['ms_per_iter']:.1f} ms/iter, "
              f"peak {fmt(out[name]['peak_mib'])} MiB")
        del model, optimizer, inputs
    return out


def build_retrain(cfg: TrialConfig, classes: int, device: torch.device):
    """Model and optimiser as `run_retrain` makes them; the lr is the warm-up's first, which cannot diverge
    on a repeated batch and costs the same per step."""
    torch.manual_seed(0)
    model = spaces.build_msinet(spaces.resolve_genotype(cfg.genotype), classes, sam_mode=cfg.sam_mode).to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr * cfg.warmup_factor,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return model, optimizer


def through_loader(args: argparse.Namespace, device: torch.device, root: str) -> dict[str, Any]:
    """The real DataLoader alone (with each worker count), then the default step fed by it."""
    cfg = trial_config(args, data_dir=root)
    splits = load_splits(cfg)
    batch = cfg.ids_per_batch * cfg.instances
    needed = (args.warmup + args.iters * args.repeats) * batch
    copies = max(1, math.ceil(2 * needed / len(splits.train)))  # PK epochs use ~2/3 of the images
    samples = widen(splits.train, copies)
    classes = len({s.pid for s in samples})
    out: dict[str, Any] = {"train_images": len(samples), "train_ids": classes,
                           "image_files": len(splits.train), "loader_only": {}}

    def loader(workers: int):
        return train_loader(samples, cfg.image_size, cfg.ids_per_batch, cfg.instances, cfg.seed, workers,
                            cfg.cross_domain, pin_memory=device.type == "cuda", replacement=cfg.pk_replacement)

    for workers in args.workers:
        free(device)
        batches = BatchStream(loader(workers))

        def run(n: int, batches=batches) -> None:
            for inputs, _pids, *_ in itertools.islice(batches, n):
                inputs.to(device, non_blocking=True)

        print(f"loader only, {workers} workers: {describe(cfg, device)}, {len(samples)} images of {classes} ids "
              f"({copies} copies of {len(splits.train)} files), decode + augment + copy to {device.type}")
        result = rates(timed(run, args, device), args, batch)
        out["loader_only"][str(workers)] = {**result, "workers": workers}
        print(f"  {result['images_per_s']:.0f} images/s")
        del batches

    free(device)
    model, optimizer = build_retrain(cfg, classes, device)
    batches = BatchStream(loader(args.workers[0]))

    def step(n: int) -> None:
        train_epoch(model, itertools.islice(batches, n), optimizer, cfg, device, 0)

    variant = variant_of(cfg)  # the trial default; its on-device row is the reference
    print(f"retrain {variant} through the loader, {args.workers[0]} workers: {describe(cfg, device)}, "
          f"{classes} classes")
    result = rates(timed(step, args, device), args, batch)
    out["train_step"] = {**result, "workers": args.workers[0], "peak_mib": peak_mib(device), "variant": variant,
                         "config": describe(cfg, device), "runs": runs(cfg, device)}
    print(f"  {result['images_per_s']:.0f} images/s, {result['ms_per_iter']:.1f} ms/iter")
    return out  # the stream, its loader and their worker processes end with this frame


def search_on_device(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The search step (architecture step on a valid batch, then weight step), as `search_epoch` runs it
    from its second iteration on; memories sized like TCM's split of Market-1501's ids."""
    out = {}
    a = args.classes // 5
    sides = {"train": 3 * a, "valid": args.classes - a}
    for name, (amp, channels_last) in SEARCH_VARIANTS.items():
        free(device)
        cfg = trial_config(args, "search", amp=amp, channels_last=channels_last)
        batch = cfg.ids_per_batch * cfg.instances
        torch.manual_seed(0)
        model = spaces.Supernet().to(device)
        if cfg.channels_last and device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        memories = [spaces.PrototypeMemory(n, temperature=cfg.memory_temperature,
                                           momentum=cfg.memory_momentum).to(device) for n in sides.values()]
        optimizer = torch.optim.SGD(model.weight_parameters() + list(memories[0].parameters()),
                                    lr=cfg.lr * cfg.warmup_factor, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
        architect = spaces.Architect(model, memories[1], lr=cfg.arch_lr, weight_decay=cfg.arch_weight_decay,
                                     milestones=cfg.arch_milestones)
        data = [(torch.randn(batch, 3, *cfg.image_size, device=device),
                 pk_labels(cfg.ids_per_batch, cfg.instances, n, seed=i).to(device))
                for i, n in enumerate(sides.values())]
        losses: dict[str, float] = {}

        def run(n: int, model=model, architect=architect, memories=memories, optimizer=optimizer, cfg=cfg,
                data=data, losses=losses) -> None:
            train, valid = DeviceBatches(*data[0], n), iter(DeviceBatches(*data[1], max(n, 1)))
            losses.update(search_epoch(model, train, valid, architect, memories[0], optimizer, cfg, device, epoch=1))

        print(f"search {name}: {describe(cfg, device)}, memories {sides['train']}/{sides['valid']} ids, "
              "random inputs on the device; one iteration = architecture step + weight step (2 batches)")
        seconds, how = timed(run, args, device), "trials.search.search_epoch"
        result = rates(seconds, args, batch)
        out[name] = {**result, "peak_mib": peak_mib(device), "step": how, **losses,
                     "config": describe(cfg, device), "runs": runs(cfg, device)}
        print(f"  {result['images_per_s']:.0f} weight-batch images/s, {result['ms_per_iter']:.1f} ms/iter, "
              f"peak {fmt(out[name]['peak_mib'])} MiB ({how})")
        del model, memories, optimizer, architect, data
    return out


def precision(args: argparse.Namespace, device: torch.device, root: str) -> dict[str, Any]:
    """Losses and gradients of one real batch from the same weights, SAM on: fp32 twice (the run-to-run floor
    of cuDNN's algorithms), bf16, bf16 + channels_last. Gradients are compared per loss term, so a gap can be
    told apart between rounding and a different choice (e.g. the batch-hard triplet's hardest pair)."""
    variants = {"fp32": (False, False), "fp32 again": (False, False), "bf16": (True, False), "bf16+cl": (True, True)}
    cfg32 = trial_config(args, data_dir=root, amp=False, channels_last=False, sam_mode="pos_neg")
    splits = load_splits(cfg32)
    loader = train_loader(splits.train, cfg32.image_size, cfg32.ids_per_batch, cfg32.instances, 0, 0, False,
                          pin_memory=False)
    inputs, pids, *_ = next(iter(loader))
    inputs, pids = inputs.to(device), pids.to(device)
    torch.manual_seed(0)
    reference = spaces.build_msinet(spaces.resolve_genotype(cfg32.genotype), splits.num_classes,
                                    sam_mode="pos_neg").to(device)
    results, ran = {}, {}
    for name, (amp, channels_last) in variants.items():
        cfg = trial_config(args, data_dir=root, amp=amp, channels_last=channels_last, sam_mode="pos_neg")
        ran[name] = runs(cfg, device)
        model = copy.deepcopy(reference)
        x = inputs
        if channels_last and device.type == "cuda":
            model.to(memory_format=torch.channels_last)
            x = inputs.contiguous(memory_format=torch.channels_last)
        model.train()
        with autocast(device, cfg.amp):
            out = model(x)
        terms = retrain_losses(out, pids, cfg)
        terms["total"] = sum(terms.values())
        params = [p for p in model.parameters() if p.requires_grad]
        grads = {}
        for term, value in terms.items():
            parts = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            grads[term] = torch.cat([(g if g is not None else torch.zeros_like(p)).double().reshape(-1)
                                     for g, p in zip(parts, params, strict=True)])
        results[name] = ({k: float(v.detach()) for k, v in terms.items()}, grads)
    l32, g32 = results["fp32"]
    report: dict[str, Any] = {"losses": {k: v[0] for k, v in results.items()}, "gradient_cosine": {},
                              "relative_difference": {}, "runs": ran}
    print(f"one real batch ({describe(cfg32, device)}), same weights; loss, then gradient cosine vs fp32; "
          f"what ran: {ran}")
    print(f"  {'term':15s}" + "".join(f"{name:>22s}" for name in variants))
    for term in l32:
        cells = []
        for name in variants:
            loss, grads = results[name]
            cos = float(torch.nn.functional.cosine_similarity(g32[term], grads[term], dim=0))
            report["gradient_cosine"].setdefault(name, {})[term] = cos
            report["relative_difference"].setdefault(name, {})[term] = abs(loss[term] - l32[term]) / max(
                abs(l32[term]), 1e-12)
            cells.append(f"{loss[term]:10.5f} / {cos:8.5f}")
        print(f"  {term:15s}" + "".join(f"{c:>22s}" for c in cells))
    worst = max(report["relative_difference"]["bf16+cl"].values())
    report.update(max_relative_difference=worst, ok=worst <= args.tolerance, tolerance=args.tolerance)
    return report


def retrain_trial(args: argparse.Namespace, root: str) -> dict[str, Any]:
    """One short real trial end to end: loader, training, validation each epoch, test at the end."""
    values = {"dataset": "market1501", "data_dir": root, "height": args.height, "epochs": 2,
              "iters_per_epoch": args.trial_iters, "eval_interval": 1, "device": args.device,
              "workers": args.workers[0], "ids_per_batch": args.ids_per_batch, "instances": args.instances,
              "seed": 0}
    print(f"retrain trial: {values}")
    start = time.perf_counter()
    metrics = run_retrain(values, LocalSession(None, verbose=False))
    seconds = time.perf_counter() - start
    keys = ("loss", "val/mAP", "source/mAP")
    finite = {k: isinstance(metrics.get(k), float) and math.isfinite(metrics[k]) for k in keys}
    kept = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    print(f"  {seconds:.1f} s; loss {metrics.get('loss')}, val/mAP {metrics.get('val/mAP')}, source/mAP "
          f"{metrics.get('source/mAP')}, last epoch {metrics.get('images_per_second', float('nan')):.0f} images/s "
          f"-> {'OK' if all(finite.values()) else 'NOT FINITE: ' + str(finite)}")
    return {"seconds": seconds, "metrics": kept, "finite": finite, "ok": all(finite.values())}


def search_trial(args: argparse.Namespace, root: str) -> dict[str, Any]:
    """A short real search: two epochs, so architecture steps run even when the tiny train side holds one
    batch (the first iteration of the first epoch has none)."""
    train_ids = len({s.pid for s in load_splits(trial_config(args, data_dir=root)).train})
    ids_per_batch = min(args.ids_per_batch, 3 * (train_ids // 5))  # TCM's train side holds 3/5 of the ids
    values = {"dataset": "market1501", "data_dir": root, "height": args.height, "epochs": 2,
              "iters_per_epoch": 3, "eval_interval": 1, "device": args.device, "workers": args.workers[0],
              "ids_per_batch": ids_per_batch, "instances": args.instances, "seed": 0}
    print(f"search trial: {values}")
    start = time.perf_counter()
    metrics = run_search(values, LocalSession(None, verbose=False))
    seconds = time.perf_counter() - start
    ok = all(math.isfinite(metrics.get(k, math.nan)) for k in ("loss/weight", "loss/architecture", "val/mAP"))
    kept = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    print(f"  {seconds:.1f} s; loss/weight {metrics.get('loss/weight')}, loss/architecture "
          f"{metrics.get('loss/architecture')}, val/mAP {metrics.get('val/mAP')} -> {'OK' if ok else 'NOT FINITE'}")
    return {"seconds": seconds, "metrics": kept, "ok": ok}


# ------------------------------------------------------------------------------------------------ report


def table(results: dict[str, Any]) -> list[str]:
    """Throughput rows with their ratio to the fp32 step of the same network and what each really ran (a
    bf16 row on a CPU ran fp32), then the checks."""
    rows = [("measurement", "images/s", "ms/iter", "peak MiB", "ratio", "ran")]
    retrain, search = results.get("retrain_on_device", {}), results.get("search_on_device", {})
    loader = results.get("through_loader", {})

    def row(label: str, r: dict | None, base: dict | None, base_name: str) -> None:
        if not r or "images_per_s" not in r:
            return
        ratio = r["images_per_s"] / base["images_per_s"] if base and "images_per_s" in base else None
        rows.append((label, fmt(r["images_per_s"]), fmt(r["ms_per_iter"], 1), fmt(r.get("peak_mib")),
                     "-" if ratio is None else f"x{ratio:.2f} of {base_name}", r.get("runs", "-")))

    for name in RETRAIN_VARIANTS:
        row(f"retrain {name} (on device)", retrain.get(name), retrain.get("fp32"), "fp32")
    # Loader rows against the same step on device data: below x1.00 the loader, not the device, sets the pace.
    step = loader.get("train_step", {})
    variant = step.get("variant", "fp32")
    row(f"retrain {variant} via loader ({step.get('workers')} w)", step, retrain.get(variant), variant)
    for workers, r in loader.get("loader_only", {}).items():
        row(f"loader only ({workers} workers)", r, retrain.get(variant), variant)
    for name in SEARCH_VARIANTS:
        row(f"search {name} (on device)", search.get(name), search.get("fp32"), "fp32")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
    checks = []
    if "precision" in results:
        p = results["precision"]
        cosines = p["gradient_cosine"]
        checks.append(f"bf16+cl vs fp32 loss: max rel diff {p['max_relative_difference']:.2e}, total-loss grad "
                      f"cosine {cosines['bf16+cl']['total']:.4f} (fp32 rerun {cosines['fp32 again']['total']:.4f}): "
                      f"{'OK' if p['ok'] else 'OVER TOLERANCE'}")
    for name in ("retrain_trial", "search_trial"):
        if name in results:
            checks.append(f"{name}: {'OK' if results[name].get('ok') else 'FAILED ' + str(results[name])[:200]}")
    return [*lines, *checks]


def main() -> int:
    args = parse_args()
    device = checked_device(args, files=("json",), folders=("data_dir",))
    configure_backends(device)
    results: dict[str, Any] = {"args": vars(args), "environment": environment(device)}
    env = results["environment"]
    print(f"device {env['name']} ({device}), torch {env['torch']}, torchvision {env['torchvision']}, "
          f"CUDA {env.get('cuda', '-')}, cuDNN {env.get('cudnn', '-')}, {env['cpus']} CPUs, "
          f"cudnn.benchmark {env['cudnn_benchmark']}, cudnn.allow_tf32 {env['cudnn_allow_tf32']}, "
          f"fp32 matmul precision {env['float32_matmul_precision']}")
    print(f"args: {vars(args)}")

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")

    def section(name: str, fn: Callable[[], Any]) -> None:
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # one failed measurement must not cost the others on a one-shot machine
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        results.setdefault("section_seconds", {})[name] = time.perf_counter() - start
        print(f"   ({results['section_seconds'][name]:.1f} s)", flush=True)
        free(device)
        save()

    with tempfile.TemporaryDirectory(prefix="gpu-retrain-") as tmp:
        root = args.data_dir or tmp
        size = (args.height, args.height // 2)
        steps = {"data": lambda: synthesize("market1501", root, ids=args.ids, seed=0, image_size=size),
                 "retrain_on_device": lambda: retrain_on_device(args, device),
                 "through_loader": lambda: through_loader(args, device, root),
                 "search_on_device": lambda: search_on_device(args, device),
                 "precision": lambda: precision(args, device, root),
                 "retrain_trial": lambda: retrain_trial(args, root),
                 "search_trial": lambda: search_trial(args, root)}
        for name in SECTIONS:
            if name == "data" or not args.only or name in args.only:
                section(name, steps[name])

    lines = table(results)
    results["table"] = lines
    save()
    print("\n" + "\n".join(lines))
    failed = [k for k, v in results.items() if isinstance(v, dict) and ("error" in v or v.get("ok") is False)]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
