"""What a trial trained and was tested on, as one record for the tracking store: the dataset's name and
layout, its root, the image counts and a digest of the file list (paths relative to the root, with pid and
camera), so that two runs on the same data carry the same digest and a changed copy does not."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from trials.data.datasets import ReIDDataset
from trials.data.registry import load_dataset


def dataset_record(dataset: ReIDDataset) -> dict[str, Any]:
    digest = hashlib.sha256()
    for split, samples in (("train", dataset.train), ("query", dataset.query), ("gallery", dataset.gallery)):
        for sample in samples:
            relative = os.path.relpath(sample.path, dataset.root) if dataset.root else sample.path
            digest.update(f"{split}\t{relative}\t{sample.pid}\t{sample.camid}\n".encode())
    return {"name": dataset.name, "layout": os.path.basename(dataset.root.rstrip("/")), "kind": dataset.kind,
            "root": dataset.root, "digest": digest.hexdigest()[:16],
            "train_images": len(dataset.train), "train_ids": dataset.num_train_pids,
            "query_images": len(dataset.query), "gallery_images": len(dataset.gallery)}


def trial_datasets(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(context, record) for the datasets a trial config names: `training` (source) and `target`."""
    options = {"test_size": int(config.get("vehicleid_test_size") or 800)}
    found = []
    for context, key in (("training", "dataset"), ("target", "target_dataset")):
        name = config.get(key)
        if name:
            extra = options if name == "vehicleid" else {}
            found.append((context, dataset_record(load_dataset(str(name), str(config["data_dir"]), **extra))))
    return found
