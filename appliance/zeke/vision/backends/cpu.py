"""CPU backend: the LiteRT interpreter with its default (XNNPACK) kernels."""

from __future__ import annotations

from typing import Any

from zeke.vision.backends.base import Availability, Backend, interpreter_api


class CpuBackend(Backend):
    name = "cpu"

    def probe(self) -> Availability:
        try:
            interpreter_api()
        except Exception as err:
            return Availability(False, str(err))
        return Availability(True, "LiteRT on the CPU")

    def interpreter(self, model: bytes, threads: int) -> Any:
        interpreter_cls, _ = interpreter_api()
        interp = interpreter_cls(model_content=model, num_threads=max(1, threads))
        interp.allocate_tensors()
        return interp
