"""Evaluation of ReID networks: ranking metrics, re-ranking, features of a network, scoring a trial's splits.

`metrics` holds the protocol (Market-1501 CMC / mAP / mINP, VehicleID draws) and `reranking` the
k-reciprocal re-ranking; both are plain functions of arrays. `features` runs a network over a loader, and
`scoring` scores a trial's validation and test splits as the flat `PREFIX/metric` dicts trials report.
`rank_lists` and `activation_maps` draw what a network returns and where it looks, `network_views` both.
The command line is `python -m trials.evaluate`.
"""

from trials.evaluation.features import evaluate, extract_features
from trials.evaluation.metrics import (
    REPORTED_RANKS,
    metric_summary,
    pairwise_distance,
    rank_metrics,
    vehicleid_metrics,
    vehicleid_splits,
)
from trials.evaluation.reranking import re_ranking

__all__ = [
    "REPORTED_RANKS",
    "evaluate",
    "extract_features",
    "metric_summary",
    "pairwise_distance",
    "rank_metrics",
    "re_ranking",
    "vehicleid_metrics",
    "vehicleid_splits",
]
