"""PK identity sampling: P ids x K images per batch, seeded per epoch, with replacement for small ids."""

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from trials.data import PKSampler, Sample

# ids 0..5 with 7, 5, 4, 3, 2 and 1 images
PIDS = [pid for pid, n in enumerate([7, 5, 4, 3, 2, 1]) for _ in range(n)]


def batches(sampler: PKSampler) -> list[list[int]]:
    order = list(sampler)
    size = sampler.batch_size
    assert len(order) % size == 0
    return [order[i:i + size] for i in range(0, len(order), size)]


def test_every_batch_holds_p_distinct_ids_with_k_images_each():
    sampler = PKSampler(PIDS, ids_per_batch=3, images_per_id=2, seed=0)
    assert sampler.batch_size == 6
    found = batches(sampler)
    assert found
    for batch in found:
        pids = [PIDS[i] for i in batch]
        assert Counter(pids) == {pid: 2 for pid in set(pids)} and len(set(pids)) == 3
        assert [pids[i] for i in range(0, 6, 2)] == [pids[i] for i in range(1, 6, 2)]  # K consecutive per id


def test_accepts_samples_and_len_matches_iteration():
    samples = [Sample(f"{i}.jpg", pid, i % 2) for i, pid in enumerate(PIDS)]
    for seed in range(5):
        sampler = PKSampler(samples, 2, 4, seed=seed)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            assert len(sampler) == len(list(sampler)) > 0


def test_ids_with_fewer_than_k_images_are_drawn_with_replacement():
    sampler = PKSampler(PIDS, ids_per_batch=6, images_per_id=4, seed=3)
    order = list(sampler)
    small = [i for i in order if PIDS[i] == 5]
    assert len(small) == 4 and set(small) == {PIDS.index(5)}  # its only image, four times
    for pid in (3, 4):  # 3 and 2 images: K draws among the id's own images
        drawn = [i for i in order if PIDS[i] == pid]
        assert len(drawn) == 4 and len(set(drawn)) < 4


def test_an_epoch_uses_an_image_at_most_once_for_ids_with_enough_images():
    sampler = PKSampler(list(range(10)) * 8, ids_per_batch=4, images_per_id=4, seed=1)
    order = list(sampler)
    assert len(order) == len(set(order)) >= 48  # ids left with chunks once fewer than P remain are skipped


def test_same_seed_and_epoch_give_the_same_order_other_epochs_or_seeds_do_not():
    a, b = PKSampler(PIDS, 2, 2, seed=7), PKSampler(PIDS, 2, 2, seed=7)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(5)
    assert list(a) != first
    a.set_epoch(4)
    assert list(a) == first  # resuming mid-run replays the epoch
    c = PKSampler(PIDS, 2, 2, seed=8)
    c.set_epoch(4)
    assert list(c) != first


def test_order_does_not_depend_on_global_random_state():
    sampler = PKSampler(PIDS, 2, 2, seed=0)
    torch.manual_seed(1)
    first = list(sampler)
    torch.manual_seed(2)
    sampler._cache = None
    assert list(sampler) == first


def test_without_replacement_small_ids_are_left_out():
    sampler = PKSampler(PIDS, ids_per_batch=2, images_per_id=4, seed=0, replacement=False)
    assert {PIDS[i] for i in sampler} <= {0, 1, 2}


def test_impossible_batch_without_replacement_is_a_clear_error():
    with pytest.raises(ValueError, match="impossible batch") as err:
        PKSampler(PIDS, ids_per_batch=2, images_per_id=8, seed=0, replacement=False)
    assert "K=8" in str(err.value) and "largest id has 7 images" in str(err.value)


def test_fewer_ids_than_p_is_an_impossible_batch():
    with pytest.raises(ValueError, match="impossible batch.*P=7"):
        PKSampler(PIDS, ids_per_batch=7, images_per_id=2)


def test_works_as_a_dataloader_sampler():
    data = torch.arange(len(PIDS))
    sampler = PKSampler(PIDS, 3, 2, seed=0)
    loader = DataLoader(data, batch_size=sampler.batch_size, sampler=sampler, drop_last=True)
    seen = [batch.tolist() for batch in loader]
    assert seen == batches(sampler)
