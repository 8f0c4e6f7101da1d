"""Export the inference-mode network to ONNX, TorchScript or torch.export (pt2), each with a dynamic batch
dimension, and load an exported file back in its own runtime for the parity check."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

FORMATS = ("onnx", "torchscript", "pt2")
FILE_NAMES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "pt2": "model.pt2"}
INPUT_NAME, OUTPUT_NAME = "images", "features"

Runner = Callable[[np.ndarray], np.ndarray]


def export(model: torch.nn.Module, fmt: str, example: torch.Tensor, out_dir: Path) -> Path:
    """Write ``model`` (eval mode, CPU) in ``fmt`` into ``out_dir``; returns the file's path."""
    path = Path(out_dir) / FILE_NAMES[fmt]
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    # the ONNX exporter prints its progress on stdout, whose last line is the command's JSON result
    with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
        if fmt == "onnx":
            torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes=({0: batch},), dynamo=True, verbose=False)
        elif fmt == "torchscript":
            with warnings.catch_warnings():  # torch.jit is deprecated upstream but still what many servers load
                warnings.simplefilter("ignore", FutureWarning)
                traced = torch.jit.trace(model, example, check_trace=False)
                torch.jit.save(traced, str(path))
        elif fmt == "pt2":
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(path))
        else:
            raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return path


def load_runner(path: Path, fmt: str) -> Runner:
    """The exported file in its own runtime: onnxruntime, torch.jit.load or torch.export.load."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu").eval()
    elif fmt == "pt2":
        module = torch.export.load(str(path)).module()
    else:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()

    return run
