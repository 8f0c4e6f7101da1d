"""From a trained checkpoint to deployment: the inference model and its preprocessing, exported graphs with
a parity check, and feature extraction (docs/deployment.md)."""

from trials.deploy.extractor import FeatureExtractor
from trials.deploy.inference import DeployError, Preprocessing, load_inference_model

__all__ = ["DeployError", "FeatureExtractor", "Preprocessing", "load_inference_model"]
