"""Why bf16 gradients "point elsewhere" than fp32's: the untrained network in training mode amplifies any
tiny perturbation, bf16 rounding or input noise alike.

On one batch and one set of freshly initialised MSINet weights, this prints the relative change of the
global feature and the cosine between whole-network gradients for: fp32 vs bf16 autocast, fp32 vs fp32 with
0.3 % multiplicative input noise (bf16 keeps 8 significant bits, about 0.4 %), and the same in eval mode,
where BatchNorm uses its running statistics instead of the batch's. Runs on the CPU (CPU autocast) in a
minute; `--device cuda` uses the GPU.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_timing import checked_device  # noqa: E402, I001

import spaces  # noqa: E402
from trials.config import make_config  # noqa: E402
from trials.retrain import retrain_losses  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--noise", type=float, default=0.003, help="relative input noise of the fp32 comparison")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    device = checked_device(args)
    torch.manual_seed(args.seed)
    model = spaces.build_msinet("msmt", 751).to(device)
    inputs = torch.randn(32, 3, args.height, args.height // 2, device=device)
    noisy = inputs * (1 + args.noise * torch.randn_like(inputs))
    pids = torch.arange(8, device=device).repeat_interleave(4)
    cfg = make_config("retrain", {})

    def run(x: torch.Tensor, bf16: bool, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        net = copy.deepcopy(model).train(train)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        if not train:
            return out.float(), torch.zeros(1, device=device)
        sum(retrain_losses(out, pids, cfg).values()).backward()
        grad = torch.cat([q.grad.flatten() for q in net.parameters() if q.grad is not None])
        return out.global_feat.float(), grad

    def change(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm().detach() / a.norm().detach())

    feat, grad = run(inputs, False, True)
    for name, (x, bf16) in {"bf16 autocast": (inputs, True), f"fp32, {args.noise:.1%} input noise": (noisy, False)
                            }.items():
        other_feat, other_grad = run(x, bf16, True)
        print(f"train mode, {name}: global feature changes {change(feat, other_feat):.1%}, gradient cosine "
              f"{F.cosine_similarity(grad, other_grad, dim=0):.3f}")
    eval_feat, _ = run(inputs, False, False)
    for name, (x, bf16) in {"bf16 autocast": (inputs, True), f"fp32, {args.noise:.1%} input noise": (noisy, False)
                            }.items():
        print(f"eval mode, {name}: test feature changes {change(eval_feat, run(x, bf16, False)[0]):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
