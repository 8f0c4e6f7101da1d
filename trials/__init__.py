"""What a Ray worker runs: the search and retrain trials, and everything they are made of.

The trials are plain functions of a config dict (`search.run_search`, `retrain.run_retrain`) with a command
line each (`python -m trials.search`, `python -m trials.retrain`); `evaluate` scores saved weights
(`python -m trials.evaluate`). `tune_entry.run_trial` is Ray Tune's entry point and `tracking` the MLflow
hook it attaches. `config` holds the one validated config, `losses` the ReID losses. The subpackages group
the rest by job: `data` (datasets, synthetic data, sampling, transforms, loaders, splits), `evaluation`
(metrics, re-ranking, features, scoring), `runtime` (session, checkpoints, RNG, device, checks, latency,
placement) and `deploy` (export with a parity check, feature extraction, the MLflow model of a checkpoint and
how it is served), with the commands `python -m trials.export`, `python -m trials.extract` and `python -m
trials.deploy.client` (docs/deployment.md).
"""
