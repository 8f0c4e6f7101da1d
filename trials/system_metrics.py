"""MLflow's system metrics (`system/...`: CPU, memory, disk, network; GPU utilisation and memory through
nvidia-ml-py when a GPU is present) for one trial run, sampled in a background thread.

Trials run for hours, so a sample every 15 s averaged into one logged point a minute (MLflow's own
`MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` and `MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING` override
both); `stop` logs what was sampled since the last point, so even a short trial gets one. The figures are
the machine's: where trials share a GPU the run carries the tag `msinet.gpu_shared` (trials/tune_entry.py).
"""

from __future__ import annotations

import sys

SAMPLING_INTERVAL_S = 15
SAMPLES_PER_POINT = 4


def start(tracking_uri: str, run_id: str):
    """A started monitor for the run, or None (with a warning) when MLflow cannot watch this machine."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_INTERVAL_S,
                                       samples_before_logging=SAMPLES_PER_POINT, resume_logging=True,
                                       tracking_uri=tracking_uri)
        monitor.start()
        return monitor
    except Exception as error:  # noqa: BLE001 - a missing psutil must not stop a trial
        print(f"warning: system metrics are not recorded: {error}", file=sys.stderr)
        return None


def stop(monitor) -> None:
    """Stop sampling and log the last (partial) point; always returns None, for `self._monitor = stop(...)`."""
    if monitor is None:
        return None
    try:
        monitor.finish()
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as error:  # noqa: BLE001
        print(f"warning: the last system metrics were not logged: {error}", file=sys.stderr)
    return None
