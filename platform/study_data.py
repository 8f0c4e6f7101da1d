"""The data a study reads: its datasets checked in the driver, or synthetic stand-ins generated first.

Checking in the driver turns a missing or malformed dataset into one clear error before any trial starts,
instead of the same error from every worker. Synthetic data uses the real on-disk layouts, so the trials
read it with the same loaders as the real datasets.
"""

from __future__ import annotations

from pathlib import Path

from study_spec import Study

from trials.dataset_names import LIST_PREFIX, DatasetError, dataset_kind, is_builtin, list_folder, source_names

# Source datasets render as domain A, targets as domain B: a cross-domain smoke study sees a real shift.
# Identities per stand-in (half train, half test); a study file may ask for more (`synthetic: {market1501: 64}`).
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
    """Generate (or reuse) a stand-in of every built-in dataset the study reads under `data_dir`, with the
    study's identity counts (`synthetic_ids`) where it sets them. A stand-in made with other counts (by a study
    asking for others in the same run folder) is regenerated.

    List folders and loaders written in Python are the user's own data: they are read as they are."""
    from trials.data import synthesize  # torch: imported only when data is touched

    counts = {}
    for index, (name, role) in enumerate(sorted(datasets(study).items())):
        if name in SYNTHETIC_IDS:
            # the platform's own stand-ins: regenerated when the generator changed
            ids = study.synthetic_ids.get(name, SYNTHETIC_IDS[name])
            counts[name] = synthesize(name, data_dir, ids=ids, seed=seed + index,
                                      domain="A" if role == "source" else "B", overwrite=True)
    return counts


def check_kinds(study: Study, data_dir: Path, data_dir_given: bool = True) -> None:
    """Sources trained together are all persons or all vehicles: known without torch or images, so --dry-run
    refuses a mix as the launch does."""
    for name in [n for n in trained_names(study) if "+" in str(n)]:
        try:
            dataset_kind(name, data_dir)
        except DatasetError as error:
            raise DataError(f"data: study {study.name!r} {reads(name, data_dir, data_dir_given)}, which cannot "
                            f"be used: {error}.") from None


def check_data(study: Study, data_dir: Path, synthetic: bool, image_cache: Path | None = None,
               data_dir_given: bool = True) -> None:
    """Load every dataset once (list files: every row) and open every image once (cached in `image_cache`); a
    failure becomes one paragraph naming the layout or the bad files, and the way out. Sources trained
    together must all be persons or all vehicles."""
    from trials.data.integrity import check_source_images  # torch: imported only when data is touched

    check_kinds(study, data_dir, data_dir_given)
    for name in sorted(datasets(study)):
        try:
            check_source_images(name, data_dir, image_cache)
        except DatasetError as error:
            hint = "" if synthetic or not is_builtin(name) else (
                f" To run study {study.name!r} without the real data, add --synthetic: stand-in images are "
                f"generated in the same layouts under the run folder.")
            raise DataError(f"data: study {study.name!r} {reads(name, data_dir, data_dir_given)}, which cannot be "
                            f"used: {error}.{hint}") from None


def reads(name: str, data_dir: Path, data_dir_given: bool) -> str:
    """`reads NAME from WHERE`, naming the folder the name is read from and the flag behind it, if any."""
    parts = source_names(name)
    if len(parts) > 1:
        return f"trains on {name}"
    where = f"--data-dir {data_dir}" if data_dir_given else f"the data folder {data_dir} (no --data-dir given)"
    if name.startswith(LIST_PREFIX):
        folder = list_folder(name, data_dir)
        if Path(name[len(LIST_PREFIX):].strip()).expanduser().is_absolute():
            return f"reads {name} (the folder {folder})"
        return f"reads {name} (the folder {folder}, under {where})"
    if not is_builtin(name):
        return f"reads {name} (a loader written in Python, given {where})"
    return f"reads {name} from {where}"
