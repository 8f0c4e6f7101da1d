"""Trials packed onto the fewest nodes, so that the nodes left idle scale down.

Each Tune trial is one placement group of one bundle. Ray places such a group on the node with the most
resources left (its score is the share of the node the bundle leaves free), which spreads trials: two retrain
trials after a search went to two half-empty nodes, and neither node could scale down until the end. So each
trial's group asks for STRICT_PACK with a soft target: the fullest alive node that still holds the bundle
(best fit). A target that is full by the time Ray places the group (or gone) is only a hint: Ray then places it
as it would have.

It lives in trials/ because Tune ships it to the workers with the trial function (as the function's resources).
"""

from __future__ import annotations

from ray.tune import PlacementGroupFactory
from ray.util.placement_group import placement_group


class PackedPlacement(PlacementGroupFactory):
    """A trial's resources, placed on the fullest node that holds them."""

    def __init__(self, resources: dict[str, float]):
        bundle = {"CPU": float(resources["cpu"])}
        if resources.get("gpu"):
            bundle["GPU"] = float(resources["gpu"])
        super().__init__([bundle], strategy="STRICT_PACK")

    def to_placement_group(self):
        try:
            target = fullest_node(self.bundles[0])
        except Exception:  # noqa: BLE001 - a hint only: without it Ray places the trial as it would have
            target = None
        return placement_group(self.bundles, strategy="STRICT_PACK", _soft_target_node_id=target)


def fullest_node(bundle: dict[str, float]) -> str | None:
    """The alive node holding `bundle` with the least left free (its scarcest resource first), or None."""
    from ray._private.state import available_resources_per_node, total_resources_per_node

    totals = total_resources_per_node()
    best = None
    for node, free in available_resources_per_node().items():
        total = totals.get(node, {})
        if any(free.get(key, 0.0) + 1e-9 < need for key, need in bundle.items()):
            continue
        left = tuple(free.get(key, 0.0) / total[key] for key in ("GPU", "CPU") if key in bundle and total.get(key))
        if best is None or (left, node) < best[0]:
            best = ((left, node), node)
    return best[1] if best else None
