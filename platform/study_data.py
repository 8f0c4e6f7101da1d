"""The data a study reads: its datasets checked in the driver, or synthetic stand-ins generated first.

Checking in the driver turns a missing or malformed dataset into one clear error before any trial starts,
instead of the same error from every worker. Synthetic data uses the real on-disk layouts, so the trials
read it with the same loaders as the real datasets.
"""

from __future__ import annotations

from pathlib import Path

from study_spec import Study

# Source datasets render as domain A, targets as domain B: a cross-domain smoke study sees a real shift.
SYNTHETIC_IDS = {"market1501": 40, "msmt17": 40, "veri": 24, "vehicleid": 24}


class DataError(ValueError):
    """A dataset the study reads cannot be used; the message names it, the layout expected and the way out."""


def datasets(study: Study) -> dict[str, str]:
    """Every dataset the study reads -> 'source' or 'target'."""
    roles: dict[str, str] = {}
    for phase in study.phases:
        roles.setdefault(phase.config.get("dataset", "market1501"), "source")
        for key in ("dataset", "target_dataset"):
            for value in phase.grid.get(key, []) + phase.space.get(key, {}).get("choice", []):
                roles.setdefault(value, "source" if key == "dataset" else "target")
        if phase.config.get("target_dataset"):
            roles.setdefault(phase.config["target_dataset"], "target")
    return roles


def prepare_synthetic(study: Study, data_dir: Path, seed: int = 0) -> dict[str, dict]:
    """Generate (or reuse) a stand-in of every dataset the study reads under `data_dir`."""
    from trials.data import synthesize  # torch: imported only when data is touched

    counts = {}
    for index, (name, role) in enumerate(sorted(datasets(study).items())):
        if name not in SYNTHETIC_IDS:
            raise DataError(f"data: --synthetic has no stand-in for dataset {name!r}; stand-ins exist for "
                            f"{', '.join(SYNTHETIC_IDS)}. Fix the dataset name, or give --data-dir with the real "
                            "data")
        counts[name] = synthesize(name, data_dir, ids=SYNTHETIC_IDS[name], seed=seed + index,
                                  domain="A" if role == "source" else "B")
    return counts


def check_data(study: Study, data_dir: Path, synthetic: bool, image_cache: Path | None = None) -> None:
    """Load every dataset once and open every image once (cached in `image_cache`); a failure becomes one
    paragraph naming the layout or the bad files, and the way out."""
    from trials.data import DatasetError, load_dataset
    from trials.data.integrity import check_dataset_images

    for name in sorted(datasets(study)):
        try:
            check_dataset_images(load_dataset(name, data_dir), image_cache)
        except DatasetError as error:
            hint = "" if synthetic else (
                f" To run study {study.name!r} without the real data, add --synthetic: stand-in images are "
                f"generated in the same layouts under the run folder.")
            raise DataError(f"data: study {study.name!r} reads {name} from --data-dir {data_dir}, "
                               f"which cannot be used: {error}.{hint}") from None
