"""The TCM split halves each shared identity's images in dataset order: list order where a dataset has list
files, a seeded shuffle for directory-scanned layouts, so both halves see the id's cameras."""

from PIL import Image

import spaces
from trials.data import Sample, load_dataset
from trials.data.order import halving_order


def _shared_camera_share(train):
    """Of the valid-side images of shared ids, the share whose camera the train side saw for that id."""
    tcm_train, tcm_valid = spaces.tcm_split(train)
    a = len({s.pid for s in train}) // 5  # valid labels are the id's rank minus a, train labels its rank
    train_cams: dict[int, set[int]] = {}
    for _, label, camid in tcm_train:
        train_cams.setdefault(label, set()).add(camid)
    shared = [(label + a, camid) for _, label, camid in tcm_valid if label + a in train_cams]
    return sum(camid in train_cams[rank] for rank, camid in shared) / len(shared), len(shared)


def _four_camera_market_tree(root):
    """20 ids, each seen twice by each of 4 cameras, in the real Market-1501 folders and file names."""
    folders = {name: root / "Market-1501-v15.09.15" / name for name in ("bounding_box_train", "query",
                                                                           "bounding_box_test")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    image = Image.new("RGB", (8, 16), (90, 120, 150))
    for pid in range(1, 21):
        for cam in range(1, 5):
            for shot in range(2):
                image.save(folders["bounding_box_train"] / f"{pid:04d}_c{cam}s1_{shot:06d}_00.jpg")
    for split, pid in (("query", 30), ("bounding_box_test", 30)):
        image.save(folders[split] / f"{pid:04d}_c{1 if split == 'query' else 2}s1_000000_00.jpg")
    return root


def test_directory_layouts_mix_cameras_across_the_halves(tmp_path):
    train = load_dataset("market1501", _four_camera_market_tree(tmp_path)).train
    mixed, n = _shared_camera_share(halving_order(train, listed=False, order="dataset", seed=0))
    by_name, _ = _shared_camera_share(halving_order(train, listed=False, order="sorted"))
    assert n == 8 * 4  # ids 4..11 of 20 are shared, 4 of their 8 images on the valid side
    assert by_name == 0.0  # sorted names: cameras 1-2 train, 3-4 valid
    assert mixed > 0.35, mixed  # a random half: 4 of the 7 other images of an id are on the train side


def test_order_is_seeded_and_keeps_every_image_once(synthetic_root):
    train = load_dataset("market1501", synthetic_root).train
    a = halving_order(train, listed=False, seed=1)
    assert a == halving_order(train, listed=False, seed=1)
    assert a != halving_order(train, listed=False, seed=2)
    assert sorted(a) == sorted(train)


def test_list_datasets_keep_their_list_order():
    samples = [Sample(f"{name}.jpg", pid, cam) for name, pid, cam in [("b", 0, 1), ("a", 0, 0), ("c", 1, 0)]]
    assert halving_order(samples, listed=True) == samples
    assert halving_order(samples, listed=False, order="sorted")[0].path == "a.jpg"
