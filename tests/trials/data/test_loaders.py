"""The search's valid stream: full PK passes one after another, independent of the train epochs, and a
stream restored from its state draws exactly the batches an uninterrupted one draws."""

import torch

from trials.data import load_dataset
from trials.data.loaders import BatchStream, train_loader


def _loader(root, seed=3):
    samples = load_dataset("market1501", root).train
    return train_loader(samples, (64, 32), 4, 2, seed, workers=0, cross_domain=False, pin_memory=False)


def test_every_pass_is_drawn_in_full_before_the_next_starts(synthetic_root):
    loader = _loader(synthetic_root)
    pk = loader.sampler.sampler
    per_pass = len(pk) // loader.batch_size
    stream = BatchStream(loader)
    drawn = [next(stream)[3] for _ in range(2 * per_pass + 3)]  # item 3 of a batch: the dataset indices
    indices = torch.cat(drawn).tolist()
    expected = []
    for p in range(3):
        pk.set_epoch(p)
        expected += list(pk)[: per_pass * loader.batch_size]
    assert indices == expected[: len(indices)]
    assert stream.state() == {"pass": 2, "drawn": 3}


def test_a_restored_stream_continues_with_the_same_batches(synthetic_root):
    loader = _loader(synthetic_root)
    per_pass = len(loader.sampler.sampler) // loader.batch_size
    stream = BatchStream(loader)
    for _ in range(per_pass - 2):
        next(stream)
    state = stream.state()
    uninterrupted = [next(stream) for _ in range(5)]  # crosses into the next pass

    restored = BatchStream(_loader(synthetic_root))
    restored.load_state(state)
    for a, b in zip(uninterrupted, [next(restored) for _ in range(5)], strict=True):
        assert torch.equal(a[0], b[0])  # same images, same augmentation
        assert torch.equal(a[3], b[3])
