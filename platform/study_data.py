"""The data a study reads: its datasets checked in the driver, or synthetic stand-ins generated first.

Checking in the driver turns a missing or malformed dataset into one clear error before any trial starts,
instead of the same error from every worker. Synthetic data uses the real on-disk layouts, so the trials
read it with the same loaders as the real datasets.
"""

from __future__ import annotations

import os
from pathlib import Path

from study_spec import Study

# Source datasets render as domain A, targets as domain B: a cross-domain smoke study sees a real shift.
SYNTHETIC_IDS = {"market1501": 40, "msmt17": 40, "veri": 24, "vehicleid": 24}


class DataError(ValueError):
    """A dataset the study reads cannot be used; the message names it, the layout expected and the way out."""


def trained_names(study: Study) -> list[str]:
    """Every value of `dataset` a trial can get, as written (`a+b` trains on two sources)."""
    names: list[str] = []
    for phase in study.phases:
        for value in ([phase.config.get("dataset", "market1501")] + phase.grid.get("dataset", [])
                      + phase.space.get("dataset", {}).get("choice", [])):
            if value not in names:
                names.append(value)
    return names


def datasets(study: Study) -> dict[str, str]:
    """Every dataset the study reads (each source of `a+b` on its own) -> 'source' or 'target'."""
    roles: dict[str, str] = {}
    for name in trained_names(study):
        for part in str(name).split("+"):
            roles.setdefault(part.strip(), "source")
    for phase in study.phases:
        values = phase.grid.get("target_dataset", []) + phase.space.get("target_dataset", {}).get("choice", [])
        if phase.config.get("target_dataset"):
            values.append(phase.config["target_dataset"])
        for value in values:
            roles.setdefault(value, "target")
    return roles


def prepare_synthetic(study: Study, data_dir: Path, seed: int = 0) -> dict[str, dict]:
    """Generate (or reuse) a stand-in of every built-in dataset the study reads under `data_dir`.

    List folders and loaders written in Python are the user's own data: they are read as they are."""
    from trials.data import synthesize  # torch: imported only when data is touched

    counts = {}
    for index, (name, role) in enumerate(sorted(datasets(study).items())):
        if name in SYNTHETIC_IDS:
            # the platform's own stand-ins: regenerated when the generator changed
            counts[name] = synthesize(name, data_dir, ids=SYNTHETIC_IDS[name], seed=seed + index,
                                      domain="A" if role == "source" else "B", overwrite=True)
    return counts


def check_data(study: Study, data_dir: Path, synthetic: bool, image_cache: Path | None = None) -> None:
    """Load every dataset once (list files: every row) and open every image once (cached in `image_cache`); a
    failure becomes one paragraph naming the layout or the bad files, and the way out. Sources trained
    together must all be persons or all vehicles."""
    from trials.data import DatasetError, load_dataset
    from trials.data.integrity import check_dataset_images
    from trials.data.names import dataset_kind

    for name in sorted(datasets(study)) + [n for n in trained_names(study) if "+" in n]:
        try:
            if "+" in name:
                dataset_kind(name, data_dir)
            else:
                check_dataset_images(load_dataset(name, data_dir), image_cache)
        except DatasetError as error:
            hint = "" if synthetic else (
                f" To run study {study.name!r} without the real data, add --synthetic: stand-in images are "
                f"generated in the same layouts under the run folder.")
            raise DataError(f"data: study {study.name!r} reads {name} from --data-dir {data_dir}, "
                               f"which cannot be used: {error}.{hint}") from None


def check_weights(study: Study) -> None:
    """`pretrained=` must name a readable file now, not after every trial has failed to load it three times."""
    for phase in study.phases:
        path = phase.config.get("pretrained")
        if path and not (Path(path).is_file() and os.access(path, os.R_OK)):
            raise DataError(f"pretrained: phase {phase.name!r} starts from {path}, which is not a readable file. "
                            f"Give the weights' path (the authors' ImageNet-pretrained file is "
                            f"{study.authors_pretrained or 'msinet_msmt.pth.tar'}), or drop --set pretrained= to "
                            f"train from scratch.")
