"""ReID data for trials: dataset parsers, synthetic stand-in data, PK sampling, transforms, image dataset.

`python -m trials.data summary --dataset NAME --data-dir DIR` reports a dataset's splits;
`python -m trials.data synthesize --layout NAME --out DIR` writes synthetic data in a real layout.
Own data: `list:PATH` (CSV list files, `listed`), loaders written in Python (`registry`, which also
dispatches every name to its loader); names, several sources joined with '+', and their kinds (person or
vehicle) are parsed without torch by `trials.dataset_names`.
"""

from trials.data.datasets import (
    DATASETS,
    DatasetError,
    ReIDDataset,
    Sample,
    summarize,
    vehicleid_split,
)
from trials.data.images import ImageDataset, read_image
from trials.data.registry import load_dataset
from trials.data.sampler import PKSampler
from trials.data.synthetic import synthesize
from trials.data.transforms import build_transforms

__all__ = [
    "DATASETS",
    "DatasetError",
    "ImageDataset",
    "PKSampler",
    "ReIDDataset",
    "Sample",
    "build_transforms",
    "load_dataset",
    "read_image",
    "summarize",
    "synthesize",
    "vehicleid_split",
]
