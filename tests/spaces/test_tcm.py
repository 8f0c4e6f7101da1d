"""TCM: the identity split, the prototype memories and their backward-pass update, the search loop."""

import pytest
import torch
import torch.nn.functional as F

from spaces.supernet import Supernet
from spaces.tcm import (
    Architect,
    ClassificationHead,
    PrototypeMemory,
    _MemoryLookup,
    classification_split,
    move_prototypes,
    num_ids,
    tcm_split,
)


def _samples(num_ids, images_per_id=lambda i: 4 + i % 3):
    """Synthetic (path, pid, camid) list with non-contiguous, shuffled pids."""
    samples = []
    for i in reversed(range(num_ids)):
        pid = 100 + 7 * i
        samples += [(f"{pid:04d}_{j}.jpg", pid, j % 2) for j in range(images_per_id(i))]
    return samples


def _ids_by_side(train, valid, samples):
    path_to_pid = {s[0]: s[1] for s in samples}
    return {path_to_pid[s[0]] for s in train}, {path_to_pid[s[0]] for s in valid}


def test_tcm_split_proportions():
    samples = _samples(10)  # a = 2
    train, valid = tcm_split(samples)
    train_ids, valid_ids = _ids_by_side(train, valid, samples)
    assert len(train_ids) == 6 and len(valid_ids) == 8 and len(train_ids & valid_ids) == 4
    ranked = sorted({s[1] for s in samples})
    assert train_ids == set(ranked[:6]) and valid_ids == set(ranked[2:])
    assert sorted(s[0] for s in train + valid) == sorted(s[0] for s in samples)


def test_shared_ids_have_their_images_halved_in_the_given_order():
    samples = _samples(10)
    train, valid = tcm_split(samples)
    ranked = sorted({s[1] for s in samples})
    for pid in ranked[2:6]:
        images = [s[0] for s in samples if s[1] == pid]
        cut = len(images) // 2
        assert [s[0] for s in train if s[0] in images] == images[:cut]
        assert [s[0] for s in valid if s[0] in images] == images[cut:]


def test_labels_are_reindexed_from_zero_on_each_side():
    samples = _samples(12)  # a = 2: train ids rank 0..5, valid ids rank 2..11
    train, valid = tcm_split(samples)
    ranked = sorted({s[1] for s in samples})
    rank = {pid: r for r, pid in enumerate(ranked)}
    original = {s[0]: s[1] for s in samples}
    assert {s[1] for s in train} == set(range(6)) and num_ids(train) == 6
    assert {s[1] for s in valid} == set(range(10)) and num_ids(valid) == 10
    assert all(s[1] == rank[original[s[0]]] for s in train)
    assert all(s[1] == rank[original[s[0]]] - 2 for s in valid)
    assert all(len(s) == 3 and s[2] in (0, 1) for s in train + valid)  # camid kept


def test_classification_split_keeps_every_id_on_both_sides():
    samples = _samples(10)
    train, valid = classification_split(samples)
    assert {s[1] for s in train} == {s[1] for s in valid} == set(range(10))
    assert len(train) + len(valid) == len(samples)
    assert sum(1 for s in train if s[1] == 0) == len([s for s in samples if s[1] == 100]) // 2


def test_memory_loss_and_update_match_a_hand_computation():
    torch.manual_seed(0)
    memory = PrototypeMemory(3, dim=4, temperature=0.05, momentum=0.2)
    prototypes = F.normalize(torch.randn(3, 4), dim=1)
    memory.prototypes.copy_(prototypes)
    features = torch.randn(4, 4, requires_grad=True)
    targets = torch.tensor([2, 0, 2, 1])

    loss = memory(features, targets)
    reference_features = features.detach().clone().requires_grad_(True)
    expected = F.cross_entropy(F.normalize(reference_features, dim=1) @ prototypes.T / 0.05, targets)
    assert torch.allclose(loss, expected)
    assert torch.equal(memory.prototypes, prototypes)  # no update in the forward pass

    loss.backward()
    expected.backward()
    # the gradient uses the prototypes from before the update
    assert torch.allclose(features.grad, reference_features.grad, atol=1e-6)

    updated = prototypes.clone()
    for x, y in zip(F.normalize(features.detach(), dim=1), targets.tolist(), strict=True):
        p = 0.2 * updated[y] + 0.8 * x
        updated[y] = p / p.norm()
    assert torch.allclose(memory.prototypes, updated, atol=1e-6)
    assert torch.allclose(memory.prototypes.norm(dim=1), torch.ones(3))
    assert not torch.allclose(memory.prototypes[2], prototypes[2])


def _per_image_loop(prototypes, inputs, targets, m):
    """The authors' update (and main's before issue 23): one image at a time, in batch order."""
    prototypes = prototypes.clone()
    for x, y in zip(inputs, targets.tolist(), strict=True):
        p = m * prototypes[y] + (1 - m) * x
        prototypes[y] = p / p.norm()
    return prototypes


@pytest.mark.parametrize("layout", ["any order", "pk shuffled", "pk"])
def test_vectorised_update_equals_the_per_image_loop(layout):
    torch.manual_seed(1)
    prototypes = F.normalize(torch.randn(12, 32), dim=1)
    prototypes[[3, 7]] = 0  # classes not seen yet
    if layout == "any order":  # unequal counts, repeats far apart: one round per image
        targets, rounds = torch.tensor([3, 0, 5, 3, 3, 11, 0, 7, 3, 5, 0, 9]), None
    else:  # 4 ids x K = 3: K rounds
        targets, rounds = torch.tensor([7, 7, 7, 2, 2, 2, 3, 3, 3, 10, 10, 10]), 3
        if layout == "pk shuffled":
            targets = targets[torch.randperm(12)]
    inputs = F.normalize(torch.randn(len(targets), 32), dim=1)
    expected = _per_image_loop(prototypes, inputs, targets, 0.2)
    moved = prototypes.clone()
    move_prototypes(moved, inputs, targets, 0.2, rounds)
    assert torch.allclose(moved, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(moved, prototypes)


def test_a_memory_with_k_rounds_moves_like_the_loop_in_its_backward_pass():
    torch.manual_seed(2)
    memory = PrototypeMemory(5, dim=16, images_per_id=2)
    memory.prototypes.copy_(F.normalize(torch.randn(5, 16), dim=1))
    features = torch.randn(6, 16, requires_grad=True)
    targets = torch.tensor([4, 1, 4, 0, 1, 0])
    expected = _per_image_loop(memory.prototypes, F.normalize(features.detach(), dim=1), targets, 0.2)
    memory(features, targets).backward()
    assert torch.allclose(memory.prototypes, expected, atol=1e-6, rtol=0)


def test_zero_initialised_memory_takes_the_first_feature_of_a_class():
    memory = PrototypeMemory(2, dim=3)
    features = torch.tensor([[3.0, 0.0, 4.0]], requires_grad=True)
    memory(features, torch.tensor([1])).backward()
    assert torch.allclose(memory.prototypes[1], torch.tensor([0.6, 0.0, 0.8]))
    assert torch.equal(memory.prototypes[0], torch.zeros(3))


def test_memory_can_start_from_class_means():
    memory = PrototypeMemory(3, dim=2)
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 1.0]])
    memory.init_from_features(features, torch.tensor([0, 0, 2]))
    assert torch.allclose(memory.prototypes[0], torch.tensor([0.5**0.5, 0.5**0.5]))
    assert torch.equal(memory.prototypes[1], torch.zeros(2))
    assert torch.allclose(memory.prototypes[2], torch.tensor([0.0, 1.0]))


def test_classification_head_is_a_drop_in_criterion():
    head = ClassificationHead(5, dim=8)
    loss = head(torch.randn(4, 8, requires_grad=True), torch.tensor([0, 1, 4, 4]))
    loss.backward()
    assert loss.ndim == 0 and head.classifier.weight.grad is not None


def test_one_search_iteration_with_twin_memories():
    torch.manual_seed(0)
    samples = _samples(10, images_per_id=lambda i: 4)
    train, valid = tcm_split(samples)
    net = Supernet()
    train_memory, valid_memory = PrototypeMemory(num_ids(train)), PrototypeMemory(num_ids(valid))
    architect = Architect(net, valid_memory)
    optimiser = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(4, 3, 64, 32)

    valid_targets = torch.tensor([0, 0, 5, 5])
    architect.step(images, valid_targets)
    assert valid_memory.prototypes[5].norm() == pytest.approx(1.0)
    assert train_memory.prototypes.abs().sum() == 0

    alpha = net.alpha.detach().clone()
    optimiser.zero_grad()
    train_targets = torch.tensor([1, 1, 3, 3])
    train_memory(net(images), train_targets).backward()
    optimiser.step()
    assert torch.equal(net.alpha, alpha)
    assert train_memory.prototypes[3].norm() == pytest.approx(1.0)


def test_the_memory_update_reads_no_value_on_the_host():
    """On the meta device tensors have no values: a `.tolist()`, `.item()` or boolean indexing in the lookup or
    the update of the backward pass (each a host sync on a GPU) raises; the vectorised rounds run. (Below the
    memory's autocast guard, which the meta device lacks.)"""
    prototypes = torch.zeros(5, 16, device="meta")
    inputs = torch.randn(6, 16, device="meta", requires_grad=True)
    logits = _MemoryLookup.apply(inputs, torch.tensor([4, 1, 4, 0, 1, 0], device="meta"), prototypes, 0.2, 2)
    logits.sum().backward()
    assert inputs.grad.shape == (6, 16)
