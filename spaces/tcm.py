"""Twins contrastive mechanism (TCM): the identity split, the twin prototype memories, the architect.

TCM searches with supervision that mimics ReID: the architecture is judged on identities the weights
only partly saw. The training ids are split so that train sees 60 % of them, valid 80 %, 40 % shared;
each side keeps a memory of L2-normalised class prototypes, and both the weights (train side) and the
architecture (valid side) minimise a contrastive loss against their side's memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Sample = tuple[Any, ...]  # (path, pid, camid, ...): only the pid (index 1) is read


# ---------------------------------------------------------------- identity splits


def _group_by_id(samples: Sequence[Sample]) -> tuple[list[Any], dict[Any, list[Sample]]]:
    by_id: dict[Any, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_id[sample[1]].append(sample)
    return sorted(by_id), by_id


def _relabel(sample: Sample, label: int) -> Sample:
    return (sample[0], label, *sample[2:])


def tcm_split(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    """Split training samples into the search-train and search-valid sets of TCM.

    Ids are sorted (N ids, a = N // 5): the first a go to train only, ids from 3a on to valid only, the
    ids in between are shared: the first half (floor) of each id's images, in the given order, to train,
    the rest to valid. Labels are re-indexed from 0 on each side (train 0..3a-1, valid 0..N-a-1).
    """
    ids, by_id = _group_by_id(samples)
    a = len(ids) // 5
    train: list[Sample] = []
    valid: list[Sample] = []
    for rank, pid in enumerate(ids):
        images = by_id[pid]
        if rank < a:
            cut = len(images)
        elif rank >= 3 * a:
            cut = 0
        else:
            cut = len(images) // 2
        train += [_relabel(s, rank) for s in images[:cut]]
        valid += [_relabel(s, rank - a) for s in images[cut:]]
    return train, valid


def classification_split(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    """The classification-supervision ablation: every id on both sides, its images halved (first half
    to train); labels are the id's rank on both sides, so one classifier serves both."""
    ids, by_id = _group_by_id(samples)
    train: list[Sample] = []
    valid: list[Sample] = []
    for rank, pid in enumerate(ids):
        images = by_id[pid]
        cut = len(images) // 2
        train += [_relabel(s, rank) for s in images[:cut]]
        valid += [_relabel(s, rank) for s in images[cut:]]
    return train, valid


def num_ids(samples: Sequence[Sample]) -> int:
    """How many distinct labels a split side holds (the size of its memory or classifier)."""
    return len({s[1] for s in samples})


# ---------------------------------------------------------------- prototype memory


def move_prototypes(prototypes: Tensor, inputs: Tensor, targets: Tensor, momentum: float,
                    rounds: int | None = None) -> None:
    """p[y] <- normalise(momentum · p[y] + (1 − momentum) · x) for every (x, y) of the batch, in batch order,
    as the authors' per-image loop does, but in `rounds` vectorised rounds: round k moves every class by
    its k-th image of the batch (a class meets at most one image per round, so the rounds keep the loop's
    order). A PK batch needs K rounds; `None` takes one per image, right for any batch. No host read, no
    data-dependent shape: a CUDA graph captures it."""
    rank = torch.tril(targets.unsqueeze(0) == targets.unsqueeze(1), diagonal=-1).sum(dim=1)  # earlier same-class images
    for k in range(len(targets) if rounds is None else rounds):
        current = prototypes[targets]
        moved = momentum * current + (1 - momentum) * inputs
        moved = moved / moved.norm(dim=1, keepdim=True)
        prototypes.index_add_(0, targets, torch.where((rank == k).unsqueeze(1), moved - current, 0))


class _MemoryLookup(torch.autograd.Function):
    """Similarities to the prototypes; the backward pass also moves the batch's prototypes (momentum)."""

    @staticmethod
    def forward(ctx, inputs: Tensor, targets: Tensor, prototypes: Tensor, momentum: float,
                rounds: int | None) -> Tensor:
        ctx.prototypes, ctx.momentum, ctx.rounds = prototypes, momentum, rounds
        ctx.save_for_backward(inputs, targets)
        return inputs.mm(prototypes.t())

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        inputs, targets = ctx.saved_tensors
        grad_inputs = grad_output.mm(ctx.prototypes) if ctx.needs_input_grad[0] else None
        with torch.no_grad():  # after the gradient, which uses the prototypes from before the update
            move_prototypes(ctx.prototypes, inputs, targets, ctx.momentum, ctx.rounds)
        return grad_inputs, None, None, None, None


class PrototypeMemory(nn.Module):
    """One side of the twin memories: a contrastive loss over L2-normalised class prototypes.

    ``forward(features, targets)`` returns cross-entropy over (normalised features · prototypesᵀ /
    temperature). The prototypes (a buffer, zero until first updated) move toward the batch features in
    the backward pass: p[y] <- normalise(momentum · p[y] + (1 − momentum) · x), image after image, using
    the gradient's prototypes from before the update. `images_per_id`: K of the PK batches the memory is
    fed (the update runs in K vectorised rounds, :func:`move_prototypes`); `None` suits any batch.
    """

    def __init__(self, num_classes: int, dim: int = 512, temperature: float = 0.05, momentum: float = 0.2,
                 images_per_id: int | None = None):
        super().__init__()
        self.temperature = temperature
        self.momentum = momentum
        self.images_per_id = images_per_id
        self.register_buffer("prototypes", torch.zeros(num_classes, dim))

    def forward(self, features: Tensor, targets: Tensor) -> Tensor:
        # The prototypes' precision even under mixed precision: they are float32 and updated in place (float64
        # where the memory is made double, as the compile test does to leave float32 rounding out).
        with torch.autocast(features.device.type, enabled=False):
            inputs = F.normalize(features.to(self.prototypes.dtype), dim=1)
            logits = _MemoryLookup.apply(inputs, targets, self.prototypes, self.momentum, self.images_per_id)
            return F.cross_entropy(logits / self.temperature, targets)

    @torch.no_grad()
    def init_from_features(self, features: Tensor, targets: Tensor) -> None:
        """Set each class's prototype to the normalised mean of its normalised features."""
        features = F.normalize(features.to(self.prototypes), dim=1)
        sums = torch.zeros_like(self.prototypes).index_add_(0, targets.to(features.device), features)
        seen = torch.bincount(targets, minlength=len(self.prototypes)).to(features.device) > 0
        self.prototypes[seen] = F.normalize(sums[seen], dim=1)


class ClassificationHead(nn.Module):
    """Classification supervision (the ablation of TCM): BN neck + linear classifier + cross-entropy.

    Call like a :class:`PrototypeMemory`. Its parameters are network weights: give them to the weight
    optimiser and use the same head on both sides (see :func:`classification_split`).
    """

    def __init__(self, num_classes: int, dim: int = 512) -> None:
        super().__init__()
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, features: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(self.classifier(self.neck(features)), targets)


# ---------------------------------------------------------------- architect


class Architect:
    """First-order architecture step: Adam on alpha only, against the valid-side criterion.

    `grad_to_weights=True` is the authors' flow: the valid loss is backpropagated into *every* parameter, so
    the weights' gradients (zeroed by the caller at the start of the iteration) hold ∇w L_valid, to which
    the train step then adds ∇w L_train. `False` is textbook first-order DARTS: the gradient is taken for
    alpha alone and the weights' gradients are left untouched. Either way the forward updates BN running
    statistics and the backward updates the valid memory. `penalty` (hardware-aware search) is a function of
    nothing but alpha, e.g. λ · E[latency] (spaces.latency.latency_penalty), added to the valid loss.
    `loss` replaces criterion(model(images), targets) when the caller computes the valid loss its own way
    (the search trial: the forward and the memory loss compiled as one graph).
    """

    def __init__(self, model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.5, 0.999), weight_decay: float = 1e-3,
                 milestones: Sequence[int] = (150, 225, 350), gamma: float = 0.1,
                 grad_to_weights: bool = True, penalty: Callable[[], Tensor] | None = None,
                 loss: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        self.model = model
        self.criterion = criterion
        self.loss = loss or (lambda images, targets: criterion(model(images), targets))
        self.grad_to_weights = grad_to_weights
        self.penalty = penalty
        self.params = list(model.arch_parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=betas, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(milestones), gamma)

    def step(self, images: Tensor, targets: Tensor) -> Tensor:
        """One update of alpha from a valid batch; returns the valid loss (without the penalty), a tensor on
        the device: reading it would make the host wait for the step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(images, targets)
        total = loss if self.penalty is None else loss + self.penalty()
        total.backward(inputs=None if self.grad_to_weights else self.params)
        self.optimizer.step()
        # alpha's gradient lives for this step only: under CUDA graphs it may be a graph's output buffer,
        # which must be read before the next replay and never written into
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach().clone()  # a copy, for the same reason

    def epoch_end(self) -> None:
        """Advance the learning-rate schedule by one epoch."""
        self.scheduler.step()
