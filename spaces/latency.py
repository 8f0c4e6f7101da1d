"""Operation cost tables: the measured latency of every interaction operation at every slot of MSINet.

MACs do not predict speed in this space (an all-`ag` network has the MACs of an all-`none` one and is
slower), so hardware-aware search needs measured costs. A table holds, for one device, dtype, image size
and batch, the latency of the derived network with `none` everywhere (the fixed part) and of each of the
four operations alone at each of the 12 slots, on the tensors it meets there. A genotype's predicted
latency is the fixed part plus its operations' costs; under softmax(alpha) the same sum gives the
expected latency that the architecture step may penalise (FBNet / ProxylessNAS style).

    python -m spaces.latency --device cpu --out spaces/latency_tables/cpu-256x128-b1.json --check 16
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from spaces.genotype import NUM_SLOTS, OPERATIONS, Genotype, resolve_genotype
from spaces.operations import build_operation
from trials.text_files import read_json  # shared by every text file a user hands over

TABLE_DIR = Path(__file__).resolve().parent / "latency_tables"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# What `--check` must meet for a table to be written (the kept tables: Spearman 0.98-0.99, error 1.6-3.3 %).
MIN_SPEARMAN = 0.7
MAX_MEAN_ERROR = 0.10


def time_ms(fn: Callable[[], Any], min_run_time: float = 0.2, threads: int | None = None) -> float:
    """Median milliseconds of one call over repeated blocks (torch.utils.benchmark synchronises CUDA)."""
    from torch.utils import benchmark  # imported here: importing it warns about CUDA_HOME on CPU machines

    fn()  # warm-up: cuDNN autotuning, allocator
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads or torch.get_num_threads())
    return 1000.0 * timer.blocked_autorange(min_run_time=min_run_time).median


def device_name(device: torch.device) -> str:
    """What the table was measured on: the GPU's name, or the CPU's model and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} threads"


def table_key(table: dict[str, Any]) -> str:
    """device name | dtype | HxW | bN: a table measured elsewhere or differently never passes for another."""
    return f"{table['device_name']}|{table['dtype']}|{table['height']}x{table['width']}|b{table['batch']}"


def slot_shapes(height: int, width: int, batch: int) -> list[tuple[int, ...]]:
    """The (B, C, H, W) shape of both branches at each slot of the derived network for this input size."""
    network = _network(Genotype(["none"] * NUM_SLOTS), torch.device("cpu"), torch.float32)
    shapes: list[tuple[int, ...]] = []
    hooks = [module.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0][0].shape)))
             for cell in network.cells if hasattr(cell, "_op2") for module in (cell._op2, cell._op3)]
    with torch.no_grad():
        network(torch.zeros(batch, 3, height, width))
    for hook in hooks:
        hook.remove()
    return shapes


def interleaved_ms(calls: dict[str, Callable[[], Any]], rounds: int, device: torch.device, block: float = 0.02,
                   warmup: float = 2.0) -> dict[str, list[float]]:
    """ms per call of each callable in each of `rounds` rounds; every round times each one once, in turn,
    so that slow drifts of a shared machine (other tenants, clocks) fall on all of them alike. The first
    `warmup` seconds are spent calling them untimed: a fresh process runs the same network up to 1.5x
    slower for its first seconds (clocks, allocator, oneDNN kernels being chosen). A plain clock with a
    device synchronisation: torch.utils.benchmark resets the thread count on every call, which costs
    more than a small network's forward on a CPU."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn: Callable[[], Any], number: int) -> float:
        sync()
        started = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return (time.perf_counter() - started) / number

    started = time.perf_counter()
    while time.perf_counter() - started < warmup:
        for fn in calls.values():
            fn()
    numbers = {name: max(1, round(block / max(timed(fn, 1), 1e-6))) for name, fn in calls.items()}  # GPUs: many
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            samples[name].append(1000.0 * timed(fn, numbers[name]))
    return samples


@torch.no_grad()
def measure_table(device: torch.device, batch: int = 1, height: int = 256, width: int = 128,
                  dtype: str = "float32", min_run_time: float = 0.2, rounds: int = 30) -> dict[str, Any]:
    """The fixed part and every (slot, operation) cost, in ms per batch, eval mode, no autograd.

    Each operation is timed alone at each slot on tensors of that slot's shape; alone it misses part of
    its cost inside the network (the tensors it writes are not in cache there: on a CPU the network pays
    2-5x the isolated sum), so each operation's column is scaled to the measured difference between the
    network with that operation in every slot and the all-`none` network. Slot shares come from the
    isolated timings, the total from the whole networks; a difference below zero is noise and counts 0.
    """
    torch_dtype = DTYPES[dtype]
    images = torch.randn(batch, 3, height, width, device=device, dtype=torch_dtype)
    networks = {op: _network(Genotype([op] * NUM_SLOTS), device, torch_dtype) for op in OPERATIONS}
    samples = interleaved_ms({op: (lambda n=n: n(images)) for op, n in networks.items()}, rounds, device)
    whole = {op: statistics.median(times) for op, times in samples.items()}
    # extra cost of an operation everywhere: the median of same-round differences, which drifts cancel
    extra = {op: statistics.median(t - base for t, base in zip(samples[op], samples["none"], strict=True))
             for op in OPERATIONS}
    isolated = []
    for shape in slot_shapes(height, width, batch):
        pair = tuple(torch.randn(shape, device=device, dtype=torch_dtype) for _ in range(2))
        row = []
        for name in OPERATIONS:
            operation = build_operation(name, shape[1]).to(device, torch_dtype).eval()
            row.append(time_ms(lambda op=operation, pair=pair: op(pair), min_run_time))
        isolated.append(row)
    slot_ms = [[0.0] * len(OPERATIONS) for _ in range(NUM_SLOTS)]
    for column, op in enumerate(OPERATIONS):
        added = max(extra[op], 0.0)
        total = sum(row[column] for row in isolated)
        for slot, row in enumerate(isolated):
            slot_ms[slot][column] = added * row[column] / total if total > 0 else added / NUM_SLOTS
    table: dict[str, Any] = {
        "device": device.type, "device_name": device_name(device), "dtype": dtype, "height": height,
        "width": width, "batch": batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "date": datetime.date.today().isoformat(), "rounds": rounds, "min_run_time": min_run_time,
        "operations": list(OPERATIONS),
        "fixed_ms": whole["none"], "slot_ms": slot_ms, "network_ms": whole, "isolated_ms": isolated,
    }
    table["key"] = table_key(table)
    return table


def load_table(name: str | Path) -> dict[str, Any]:
    """A kept table by name (a file of spaces/latency_tables, without .json) or a table file's path.
    Raises ValueError naming the file and what is wrong."""
    path = Path(name)
    if path.suffix != ".json":
        path = TABLE_DIR / f"{name}.json"
    if not path.is_file():
        kept = ", ".join(sorted(p.stem for p in TABLE_DIR.glob("*.json"))) or "none"
        raise ValueError(f"latency table {str(name)!r}: no file {path}; kept tables: {kept} "
                         "(or measure one: python -m spaces.latency --device cpu --out TABLE.json)")
    table = read_json(path, "latency table")  # a ValueError naming the file and line
    slots = table.get("slot_ms") if isinstance(table, dict) else None
    if (not isinstance(slots, list) or len(slots) != NUM_SLOTS
            or any(not isinstance(r, list) or len(r) != len(OPERATIONS) for r in slots)
            or table.get("operations") != list(OPERATIONS) or not isinstance(table.get("fixed_ms"), int | float)):
        raise ValueError(f"latency table {path}: expected fixed_ms, operations {list(OPERATIONS)} and slot_ms "
                         f"({NUM_SLOTS} rows of {len(OPERATIONS)} ms), as python -m spaces.latency writes")
    table["path"] = str(path)
    return table


def cost_matrix(table: dict[str, Any], device: torch.device | str = "cpu") -> Tensor:
    """(12, 4) float32 costs in ms per batch, columns in the order of OPERATIONS (alpha's)."""
    return torch.tensor(table["slot_ms"], dtype=torch.float32, device=device)


def predict_ms(genotype: Genotype | str, table: dict[str, Any]) -> float:
    """Predicted latency of the derived network, ms per batch of the table's size."""
    genotype = resolve_genotype(genotype)
    return table["fixed_ms"] + sum(table["slot_ms"][slot][OPERATIONS.index(op)] for slot, op in enumerate(genotype))


def expected_ms(weights: Tensor, table: dict[str, Any]) -> Tensor:
    """fixed + Σ_slots Σ_ops weights · cost: differentiable in `weights` (softmax(alpha), 12 x 4)."""
    return table["fixed_ms"] + (weights * cost_matrix(table, weights.device)).sum()


def reference_ms(table: dict[str, Any]) -> float:
    """Expected latency of the uniform mixture (alpha at zero): the scale that makes λ device-independent."""
    return expected_ms(torch.full((NUM_SLOTS, len(OPERATIONS)), 1 / len(OPERATIONS)), table).item()


def latency_penalty(weight: float, table: dict[str, Any]) -> Callable[[Tensor], Tensor]:
    """λ · E[latency] / reference: with λ = 1, cutting the expected latency by 1 % is worth 0.01 of loss."""
    scale = weight / reference_ms(table)
    return lambda weights: scale * expected_ms(weights, table)


def check_table(table: dict[str, Any], genotypes: Sequence[Genotype], device: torch.device,
                rounds: int = 30) -> dict[str, Any]:
    """Predicted against measured whole-network latency: Spearman rank correlation and relative errors.

    A shared machine's speed drifts by tens of percent over minutes, so the all-`none` network is timed in
    the same rounds and `relative_error` compares the prediction rescaled by its drift (measured now over
    the table's fixed part); `raw_relative_error` compares the table's figures as they are.
    """
    dtype = DTYPES[table["dtype"]]
    images = torch.randn(table["batch"], 3, table["height"], table["width"], device=device, dtype=dtype)
    base = Genotype(["none"] * NUM_SLOTS)
    with torch.no_grad():
        networks = {str(g): _network(g, device, dtype) for g in [base, *genotypes]}
        samples = interleaved_ms({g: (lambda n=n: n(images)) for g, n in networks.items()}, rounds, device)
    measured_by = {g: statistics.median(times) for g, times in samples.items()}
    drift = measured_by[str(base)] / table["fixed_ms"]
    measured = [measured_by[str(g)] for g in genotypes]
    predicted = [predict_ms(g, table) for g in genotypes]

    def errors(scale: float) -> list[float]:
        return [abs(scale * p - m) / m for p, m in zip(predicted, measured, strict=True)]

    return {"genotypes": len(genotypes), "spearman": spearman(predicted, measured), "drift": drift,
            "mean_relative_error": statistics.mean(errors(drift)), "max_relative_error": max(errors(drift)),
            "raw_mean_relative_error": statistics.mean(errors(1.0)), "measured_ms": measured,
            "predicted_ms": predicted, "genotype": [str(g) for g in genotypes]}


def check_failures(table: dict[str, Any]) -> list[str]:
    """Why a checked table must not be used (empty: it passed): its predictions rank the measured networks
    below MIN_SPEARMAN, miss them by more than MAX_MEAN_ERROR on average, or every slot costs nothing (the
    operations' differences were lost in the noise of a busy machine)."""
    check, problems = table["check"], []
    if all(cost == 0 for row in table["slot_ms"] for cost in row):
        problems.append("every slot costs 0.00 ms: the operations' differences were lost in the machine's noise")
    if not check["spearman"] >= MIN_SPEARMAN:
        problems.append(f"Spearman {check['spearman']:.3f} < {MIN_SPEARMAN} (the predictions do not order the "
                        f"{check['genotypes']} measured networks)")
    if not check["mean_relative_error"] <= MAX_MEAN_ERROR:
        problems.append(f"mean relative error {check['mean_relative_error']:.1%} > {MAX_MEAN_ERROR:.0%} after the "
                        f"machine's drift (x{check['drift']:.2f}), {check['raw_mean_relative_error']:.1%} before")
    return problems


def check_genotypes(count: int, seed: int = 0) -> list[Genotype]:
    """Genotypes spread over the latency range, none of them a calibration point: genotype i puts
    cross_att in each slot with probability i / (count - 1), else one of the other three at random."""
    out = []
    for i in range(count):
        rng = random.Random(seed + i)
        share = i / max(count - 1, 1)
        out.append(Genotype("cross_att" if rng.random() < share else rng.choice(OPERATIONS[:3])
                            for _ in range(NUM_SLOTS)))
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    def ranks(values: Sequence[float]) -> Tensor:
        x = torch.tensor(values, dtype=torch.float64)
        return (x[:, None] > x[None, :]).sum(1) + 0.5 * ((x[:, None] == x[None, :]).sum(1) - 1)

    ra, rb = ranks(a).double(), ranks(b).double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def refused(table: dict[str, Any], out: Path) -> bool:
    """A checked table that fails `check_failures` is not written: say why, with its figures and what to do."""
    problems = check_failures(table)
    if problems:
        c = table["check"]
        slots = "  ".join(f"{op} {sum(r[i] for r in table['slot_ms']):.2f}" for i, op in enumerate(OPERATIONS))
        print(f"error: {table['key']}: the check on {c['genotypes']} genotypes failed, so {out} was not written: "
              f"{'; '.join(problems)}. Figures: fixed {table['fixed_ms']:.2f} ms, sum over the 12 slots {slots} ms; "
              f"measured {min(c['measured_ms']):.2f}-{max(c['measured_ms']):.2f} ms, predicted "
              f"{min(c['predicted_ms']):.2f}-{max(c['predicted_ms']):.2f} ms. Measure on an idle machine (nothing "
              "else running), and with more --rounds (100 made the kept tables).", file=sys.stderr)
    return bool(problems)


def _network(genotype: Genotype, device: torch.device, dtype: torch.dtype) -> nn.Module:
    from spaces.msinet import build_msinet  # msinet imports this module's neighbours, not this module

    return build_msinet(genotype, num_classes=1).to(device, dtype).eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spaces.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--batch", type=int, default=1, help="images per forward (default 1)")
    p.add_argument("--height", type=int, default=256, help="input height (default 256)")
    p.add_argument("--width", type=int, default=128, help="input width (default 128; vehicles: 256)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--min-run-time", type=float, default=0.2, help="seconds of timing per isolated operation")
    p.add_argument("--rounds", type=int, default=30, help="rounds of interleaved whole-network timings")
    p.add_argument("--check", type=int, default=0, metavar="N", help="also measure N genotypes spread over "
                   "the latency range whole, and store the prediction's rank correlation and errors")
    p.add_argument("--out", type=Path, required=True, help="the table's JSON file")
    args = p.parse_args(argv)
    if args.batch < 1 or args.height < 32 or args.width < 16:
        p.error("--batch must be >= 1, --height >= 32 and --width >= 16")
    from trials.config import ConfigError  # the commands' shared checks of a device and an output path
    from trials.runtime.device import resolve_device
    from trials.runtime.folders import OutputError, check_output

    try:
        device = resolve_device(args.device, "--device")
        check_output(args.out, "--out", file=True)
    except (ConfigError, OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from trials.runtime.device import configure_backends  # the trials' settings: cuDNN autotuning on CUDA

    configure_backends(device)
    table = measure_table(device, args.batch, args.height, args.width, args.dtype, args.min_run_time,
                          args.rounds)
    table["cudnn_benchmark"] = torch.backends.cudnn.benchmark if device.type == "cuda" else None
    if args.check:
        table["check"] = check_table(table, check_genotypes(args.check), device, args.rounds)
        if refused(table, args.out):
            return 2
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    ops = "  ".join(f"{op} {sum(r[i] for r in table['slot_ms']):.2f}" for i, op in enumerate(OPERATIONS))
    print(f"{table['key']}: fixed {table['fixed_ms']:.2f} ms; sum over the 12 slots: {ops} ms")
    if args.check:
        c = table["check"]
        print(f"check on {c['genotypes']} genotypes: Spearman {c['spearman']:.3f}; relative error mean "
              f"{c['mean_relative_error']:.1%}, max {c['max_relative_error']:.1%} after the machine's drift "
              f"(x{c['drift']:.2f} since the table), {c['raw_mean_relative_error']:.1%} before")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
