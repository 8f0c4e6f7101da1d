"""The end of a launch in the model registry: the launch's best retrain by the study's validation metric
(the final retrain when the study has one) becomes the `champion` of the registered model `msinet-<study>`
(analysis/registry.py holds the rule). `python -m analysis promote` moves the alias by hand."""

from __future__ import annotations

import sys
from typing import Any

from study_spec import Study


def register_launch_champion(launch: dict[str, Any], study: Study) -> dict[str, Any] | None:
    """Register and print the champion; a registry that refuses is a warning, the launch's results stand."""
    from analysis.registry import register_champion  # pandas: only once a launch has run

    try:
        result = register_champion(launch["tracking_uri"], study.name, launch["launch"], study.metric, study.mode)
    except Exception as error:  # noqa: BLE001 - every trial is recorded already; say how to do it by hand
        print(f"warning: no champion registered ({type(error).__name__}: {error}); register one with: "
              f"python -m analysis promote --study {study.name} --run RUN_ID", file=sys.stderr)
        return None
    if result is None:
        print(f"registry: no finished retrain with a logged model in launch {launch['launch']}; no champion",
              file=sys.stderr)
        return None
    print(f"champion: {result['uri']} = version {result['version']}, run {result['run_id']} ({result['trial']})\n"
          f"  {result['reason']}")
    return result
