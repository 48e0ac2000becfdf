"""A loaded model ready to run: verified bytes, an interpreter, its input and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zeke.errors import ModelError
from zeke.native import quiet_stderr
from zeke.vision.backends import Backend
from zeke.vision.models import Manifest, ModelEntry, verified_bytes


@dataclass
class ModelRunner:
    """One interpreter with one input tensor; ``run`` returns the outputs as arrays."""

    entry: ModelEntry
    interpreter: Any
    backend: str

    def __post_init__(self) -> None:
        inp = self.interpreter.get_input_details()[0]
        self.input_index: int = inp["index"]
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in inp["shape"])
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_quant: tuple[float, int] = (
            float(inp["quantization"][0]),
            int(inp["quantization"][1]),
        )
        self.outputs = self.interpreter.get_output_details()
        self._invoke = self.interpreter.invoke
        self._set = self.interpreter.set_tensor
        self._get = self.interpreter.get_tensor

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        self._set(self.input_index, tensor)
        self._invoke()
        return [self._get(out["index"]) for out in self.outputs]

    def output_quant(self, i: int) -> tuple[float, int]:
        q = self.outputs[i]["quantization"]
        return float(q[0]), int(q[1])


def load_runner(manifest: Manifest, name: str, backend: Backend, threads: int) -> ModelRunner:
    """Verify the model's sha256 and build its interpreter on the given backend."""
    entry, data = verified_bytes(manifest, name)
    try:
        with quiet_stderr():
            interp = backend.interpreter(data, threads)
    except (ValueError, RuntimeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"model {manifest.directory / entry.file} does not load on {backend.name}: {first}",
            hint="check that the model matches the backend (Edge TPU models need the TPU)",
        ) from None
    return ModelRunner(entry=entry, interpreter=interp, backend=backend.name)
