"""Time `trials.evaluation.rank_metrics` against a plain per-query loop at Market-1501's test size.

    .venv/bin/python benchmarks/rank_metrics.py [--queries 3368] [--gallery 15913] [--loop-queries N]

Random float32 distances, 751 ids (plus distractors, id 0, in the gallery) and 6 cameras, seeded. The
loop is the textbook implementation (one stable argsort per query, numpy per query) and runs on all
queries by default. With ``--loop-queries N`` (N < ``--queries``) it runs on the first N queries only:
its time is extrapolated linearly to all queries (said so in the output) and the agreement check compares
it with the vectorised metrics on those N queries. Both are timed side by side in one run, so the ratio
holds even when the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.evaluation import rank_metrics  # noqa: E402


def per_query_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The Market-1501 protocol one query at a time (the usual reference implementation)."""
    num_ranks = min(max_rank, distmat.shape[1])
    cmc_sum, ap_sum, inp_sum, num_valid = np.zeros(num_ranks), 0.0, 0.0, 0
    for i in range(len(distmat)):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = (g_pids[order] == q_pids[i])[keep]
        match_ranks = np.flatnonzero(hits) + 1
        if len(match_ranks) == 0:
            continue
        num_valid += 1
        cmc_sum[match_ranks[0] - 1 :] += 1
        ap_sum += np.mean(np.arange(1, len(match_ranks) + 1) / match_ranks)
        inp_sum += len(match_ranks) / match_ranks[-1]
    return {
        "cmc": cmc_sum / num_valid,
        "mAP": ap_sum / num_valid,
        "mINP": inp_sum / num_valid,
        "num_valid_queries": num_valid,
    }


def max_difference(a: dict, b: dict) -> float:
    return max(abs(a["mAP"] - b["mAP"]), abs(a["mINP"] - b["mINP"]), float(np.abs(a["cmc"] - b["cmc"]).max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=15913)
    parser.add_argument("--ids", type=int, default=751)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--loop-queries", type=int, default=0, help="queries the loop runs on (default 0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="vectorised timing: best of this many runs")
    parser.add_argument("--threads", type=int, default=0, help="rank_metrics threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    distmat = rng.random((args.queries, args.gallery), dtype=np.float32)
    q_pids = rng.integers(1, args.ids + 1, args.queries)
    g_pids = rng.integers(0, args.ids + 1, args.gallery)  # id 0: distractors
    q_camids = rng.integers(0, args.cameras, args.queries)
    g_camids = rng.integers(0, args.cameras, args.gallery)
    inputs = (distmat, q_pids, g_pids, q_camids, g_camids)
    print(f"{args.queries} queries x {args.gallery} gallery, {args.ids} ids, {args.cameras} cameras, float32")

    def best_time(num_threads: int) -> tuple[float, dict, str]:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = rank_metrics(*inputs, num_threads=num_threads)
            times.append(time.perf_counter() - start)
        return min(times), result, ", ".join(f"{t:.3f}" for t in times)

    threads = args.threads or torch.get_num_threads()
    single_s, _, runs = best_time(1)
    print(f"rank_metrics, 1 thread: {single_s:.3f} s (best of {args.repeats}; runs {runs})")
    fast_s, fast, runs = best_time(threads)
    print(f"rank_metrics, {threads} threads: {fast_s:.3f} s (best of {args.repeats}; runs {runs})")

    subset = args.queries if args.loop_queries <= 0 else min(args.loop_queries, args.queries)
    sub_inputs = (distmat[:subset], q_pids[:subset], g_pids, q_camids[:subset], g_camids)
    start = time.perf_counter()
    slow = per_query_loop(*sub_inputs)
    loop_s = time.perf_counter() - start
    if subset < args.queries:
        loop_total = loop_s * args.queries / subset
        print(
            f"per-query loop: {loop_s:.3f} s on the first {subset} queries -> {loop_total:.2f} s for all "
            f"{args.queries} (extrapolated linearly)"
        )
        reference = rank_metrics(*sub_inputs)
    else:
        loop_total = loop_s
        print(f"per-query loop: {loop_total:.2f} s")
        reference = fast
    speed_up = f"{loop_total / single_s:.1f}x (1 thread), {loop_total / fast_s:.1f}x ({threads} threads)"
    print(f"speed-up over the loop: {speed_up}")

    diff = max_difference(reference, slow)
    agree = diff <= 1e-6 and reference["num_valid_queries"] == slow["num_valid_queries"]
    print(
        f"mAP {fast['mAP']:.6f}, mINP {fast['mINP']:.6f}, rank-1 {fast['cmc'][0]:.6f}, "
        f"valid queries {fast['num_valid_queries']}"
    )
    print(
        f"agreement with the loop on {subset} queries: max |difference| {diff:.2e} -> {'OK' if agree else 'MISMATCH'}"
    )
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
