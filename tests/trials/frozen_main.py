"""The loss and memory code of `main` before the sync-free rewrite (issue 23), frozen as it was: the reference
the rewritten losses, memories and steps are compared with. Not used by the platform. One change: the memory
computes in its prototypes' precision (main: `.float()`; the same for float32), so that the search steps can be
compared in float64."""

from unittest import mock

import torch
import torch.nn.functional as F

import spaces.sam


def batch_hard_triplet(features, targets, margin=0.3):
    x = F.normalize(features.float(), dim=1)
    dist = torch.cdist(x, x).clamp_min(1e-12)
    same = targets.unsqueeze(0) == targets.unsqueeze(1)
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)
    valid = torch.isfinite(hardest_neg)
    if not bool(valid.any()):
        return features.sum() * 0.0
    return F.relu(hardest_pos[valid] - hardest_neg[valid] + margin).mean()


def _mean_cosine_distance(x, y, mask):
    dist = 1 - torch.bmm(F.normalize(x, dim=-1), F.normalize(y, dim=-1).transpose(1, 2))
    mask = mask.to(dist.dtype)
    counts = mask.sum(dim=(1, 2))
    has_pairs = counts > 0
    if not bool(has_pairs.any()):
        return dist.sum() * 0
    per_anchor = (dist * mask).sum(dim=(1, 2))[has_pairs] / counts[has_pairs]
    return per_anchor.mean()


def sam_loss(scores, pids, mode):
    """main's: `spaces.sam.sam_loss` (its body is unchanged) on main's `_mean_cosine_distance` above."""
    with mock.patch.object(spaces.sam, "_mean_cosine_distance", _mean_cosine_distance):
        return spaces.sam.sam_loss(scores, pids, mode)


def retrain_losses(out, pids, cfg):
    def head(logits, features):
        log_probs = F.log_softmax(logits.float(), dim=1)
        nll = -log_probs.gather(1, pids.unsqueeze(1)).squeeze(1)
        ce = ((1.0 - cfg.label_smoothing) * nll + cfg.label_smoothing * -log_probs.mean(dim=1)).mean()
        return ce, batch_hard_triplet(features, pids, cfg.triplet_margin)

    ce_g, tri_g = head(out.global_logits, out.global_feat)
    ce_p, tri_p = head(out.part_logits, out.part_feat)
    terms = {"ce_global": ce_g, "triplet_global": tri_g, "ce_part": ce_p, "triplet_part": tri_p}
    if out.sam is not None:
        terms["sam"] = cfg.sam_ratio * sam_loss(out.sam, pids, cfg.sam_mode)
    return terms


class _MemoryLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, targets, prototypes, momentum):
        ctx.prototypes = prototypes
        ctx.momentum = momentum
        ctx.save_for_backward(inputs, targets)
        return inputs.mm(prototypes.t())

    @staticmethod
    def backward(ctx, grad_output):
        inputs, targets = ctx.saved_tensors
        prototypes, m = ctx.prototypes, ctx.momentum
        grad_inputs = grad_output.mm(prototypes) if ctx.needs_input_grad[0] else None
        with torch.no_grad():
            for x, y in zip(inputs, targets.tolist(), strict=True):
                updated = m * prototypes[y] + (1 - m) * x
                prototypes[y] = updated / updated.norm()
        return grad_inputs, None, None, None


def memory_loss(memory, features, targets):
    """`PrototypeMemory.forward` of main, on `memory`'s buffer and settings."""
    inputs = F.normalize(features.to(memory.prototypes.dtype), dim=1)
    logits = _MemoryLookup.apply(inputs, targets, memory.prototypes, memory.momentum)
    return F.cross_entropy(logits / memory.temperature, targets)


def search_step(model, architect_optimizer, train_memory, valid_memory, optimizer, train_batch, valid_batch,
                arch_step=True):
    """main's `search_step` with its `Architect.step` (default flow, no penalty), fp32."""
    optimizer.zero_grad(set_to_none=True)
    losses = {}
    if arch_step:
        v_inputs, v_pids = valid_batch
        architect_optimizer.zero_grad(set_to_none=True)
        loss = memory_loss(valid_memory, model(v_inputs), v_pids)
        loss.backward()
        architect_optimizer.step()
        architect_optimizer.zero_grad(set_to_none=True)
        losses["architecture"] = torch.tensor(float(loss.detach()))
    inputs, pids = train_batch
    loss = memory_loss(train_memory, model(inputs), pids)
    loss.backward()
    optimizer.step()
    losses["weight"] = loss.detach()
    return losses
