"""The parity figures themselves: float32 rounding of large features passes, a wrong scale or order fails."""

import numpy as np

from trials.deploy.parity import MAX_ABS, MIN_COSINE, feature_gaps


def test_rounding_of_large_features_passes_but_a_scaled_or_shuffled_output_fails():
    rng = np.random.default_rng(0)
    reference = (rng.random((4, 768)) * 2e6).astype(np.float32)  # pre-BN features of a trained network
    rounded = (reference.astype(np.float64) * (1 + 1e-7)).astype(np.float32)
    gaps, raw, cosines = feature_gaps(reference, rounded)
    assert (raw > MAX_ABS).all()  # float32 cannot hold these to 1e-4 absolute
    assert (gaps <= MAX_ABS).all() and (cosines >= MIN_COSINE).all()
    doubled, _, _ = feature_gaps(reference, reference * 2)  # normalisation applied twice: a scale change
    assert (doubled > MAX_ABS).all()
    _, _, shuffled = feature_gaps(reference, reference[::-1])  # features of other images
    assert (shuffled < MIN_COSINE).all()


def test_small_features_are_compared_absolutely_and_zero_vectors_by_definition():
    unit = np.eye(3, 768, dtype=np.float32)
    gaps, raw, cosines = feature_gaps(unit, unit + 2e-4)
    assert np.allclose(gaps, raw) and (gaps > MAX_ABS).all()
    _, _, cosines = feature_gaps(np.zeros((2, 768)), np.stack([np.zeros(768), np.ones(768)]))
    assert cosines.tolist() == [1.0, 0.0]
