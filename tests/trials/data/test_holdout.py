"""The validation hold-out: disjoint ids, relabelled training ids, every query with a cross-camera match."""

from trials.data import Sample
from trials.data.holdout import holdout_split


def _samples(ids=20, cams=3, per_cam=2):
    return [Sample(f"/x/{p:04d}_c{c}_{i}.jpg", p, c) for p in range(ids) for c in range(cams)
            for i in range(per_cam)]


def test_held_out_ids_are_disjoint_and_training_ids_relabelled():
    train = _samples()
    held = holdout_split(train, 0.2, seed=3)
    val_ids = {s.pid for s in held.query} | {s.pid for s in held.gallery}
    assert len(val_ids) == 4
    assert sorted({s.pid for s in held.train}) == list(range(16))
    assert len(held.train) + len(held.query) + len(held.gallery) == len(train)
    kept_paths = {s.path for s in held.train}
    assert not kept_paths & {s.path for s in held.query + held.gallery}


def test_every_query_has_a_match_in_another_camera():
    held = holdout_split(_samples(cams=2, per_cam=1), 0.3, seed=0)
    assert held.query
    for q in held.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in held.gallery)


def test_deterministic_per_seed_and_off_at_zero():
    train = _samples()
    assert holdout_split(train, 0.2, 1) == holdout_split(train, 0.2, 1)
    assert holdout_split(train, 0.2, 1).query != holdout_split(train, 0.2, 2).query
    off = holdout_split(train, 0.0, 1)
    assert off.train == train and not off.query and not off.gallery
