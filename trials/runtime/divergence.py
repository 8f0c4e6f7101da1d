"""Stop a diverged trial with a clear message instead of training on NaN and reporting garbage.

The check lives on the device: each step adds a few kernels that remember the first iteration at which a
loss term or the weights stopped being finite, and the host reads that once every `every` steps and at
the end of the epoch. A host read per step would make the CPU wait for the GPU at every iteration (and
rule out CUDA-graph capture); the few extra steps a diverged run takes before the read cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from trials.runtime.failures import NonFiniteLossError  # a failure that repeats: never retried

READ_EVERY = 100  # steps between host reads within an epoch


class DivergenceWatch:
    """The loss terms and, cheaply, the weights after each step (one fused norm over every tensor: a NaN or
    infinite entry anywhere makes it non-finite), checked on the device; `read` raises for the first bad
    iteration of the epoch, naming the term, the epoch, the iteration and the lr.

    `names`: every loss term a step may report, when a step may leave some out (the search's architecture
    loss at iteration 0); by default the terms of the first step. Iterations count from `first_iteration`.
    """

    def __init__(self, weights: Iterable[torch.Tensor], epoch: int, lr: float | None = None,
                 names: Sequence[str] | None = None, every: int = READ_EVERY, first_iteration: int = 1) -> None:
        self.weights = [w.detach() for w in weights if w.is_floating_point()]
        self.epoch, self.lr, self.every = epoch, lr, every
        self.names = None if names is None else [*names, "weights"]
        self.iteration = first_iteration - 1
        self.state: dict[str, torch.Tensor] | None = None  # first bad iteration (0: none), its values, its terms

    def record(self, terms: dict[str, torch.Tensor]) -> None:
        """One step's loss terms, with the weights as they are now; reads the host every `every` steps."""
        self.iteration += 1
        terms = {n: v.detach().float().reshape(()) for n, v in terms.items()}
        if self.state is None:
            self.names = self.names or [*terms, "weights"]
            device = next(iter(terms.values())).device
            self.state = {"first_bad": torch.zeros((), dtype=torch.long, device=device),
                          "values": torch.zeros(len(self.names), device=device),
                          "present": torch.zeros(len(self.names), device=device),
                          "one": torch.ones((), device=device), "zero": torch.zeros((), device=device)}
        state = self.state
        norm = torch.nn.utils.get_total_norm(self.weights).float() if self.weights else state["zero"]
        terms["weights"] = norm
        values = torch.stack([terms[n].to(state["zero"].device) if n in terms else state["zero"] for n in self.names])
        present = torch.stack([state["one"] if n in terms else state["zero"] for n in self.names])
        first = (~torch.isfinite(values) & (present > 0)).any() & (state["first_bad"] == 0)
        state["first_bad"] = torch.where(first, self.iteration, state["first_bad"])
        state["values"] = torch.where(first, values, state["values"])
        state["present"] = torch.where(first, present, state["present"])
        if self.every and self.iteration % self.every == 0:
            self.read()

    def read(self) -> None:
        """One host read: raises NonFiniteLossError if a recorded step was not finite."""
        if self.state is None:
            return
        state = self.state
        first_bad, *rest = torch.cat([state["first_bad"].reshape(1).float(), state["values"],
                                      state["present"]]).tolist()
        if first_bad == 0:
            return
        found = [(n, v) for n, v, p in zip(self.names, rest[:len(self.names)], rest[len(self.names):], strict=True)
                 if p]
        at = f"at epoch {self.epoch}, iteration {int(first_bad)}" + (f" (lr {self.lr:g})" if self.lr is not None
                                                                       else "")
        losses = ", ".join(f"{n} {v:.4g}" for n, v in found if n != "weights")
        name, value = next((n, v) for n, v in found if not math.isfinite(v))
        what = (f"the weights became {value} after the step {at}; the losses were {losses}" if name == "weights"
                else f"loss '{name}' is {value} {at}")
        raise NonFiniteLossError(f"{what}; the trial stops here (the training diverged: try a lower lr, a longer "
                                 "warm-up, or amp=false)")


def check_finite(terms: dict[str, torch.Tensor], epoch: int, iteration: int, lr: float | None = None,
                 weights: Iterable[torch.Tensor] = ()) -> None:
    """One step checked at once (one host read): a `DivergenceWatch` of a single iteration."""
    watch = DivergenceWatch(weights, epoch, lr, every=0, first_iteration=iteration)
    watch.record({n: torch.as_tensor(v) for n, v in terms.items()})
    watch.read()
