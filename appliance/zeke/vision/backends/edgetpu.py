"""Edge TPU backend: LiteRT with the libedgetpu delegate.

libedgetpu comes from the board vendor's apt repository (``libedgetpu1-std``), never from
PyPI. Only Edge-TPU-compiled models (``runtime = "edgetpu"`` in the manifest) run here.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from zeke.vision.backends.base import Availability, Backend, interpreter_api

DELEGATE_LIBRARY = os.environ.get("ZEKE_EDGETPU_LIBRARY", "libedgetpu.so.1")


class EdgeTpuBackend(Backend):
    name = "edgetpu"

    def __init__(self, library: str = DELEGATE_LIBRARY, device: str | None = None):
        self.library = library
        self.device = device
        self._probed: Availability | None = None

    def _delegate(self) -> Any:
        _, load_delegate = interpreter_api()
        options = {"device": self.device} if self.device else {}
        return load_delegate(self.library, options)

    def probe(self) -> Availability:
        if self._probed is None:
            try:
                # Opening the library first keeps a missing libedgetpu a plain OSError
                # (a failed load_delegate also leaves a noisy half-built object behind).
                ctypes.CDLL(self.library)
                self._delegate()
            except (ValueError, OSError, RuntimeError) as err:
                detail = (
                    str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                )
                self._probed = Availability(
                    False,
                    f"Edge TPU delegate {self.library} did not load ({detail}); "
                    "install libedgetpu1-std from the Coral apt repository and plug in the TPU",
                )
            else:
                self._probed = Availability(True, f"Edge TPU via {self.library}")
        return self._probed

    def interpreter(self, model: bytes, threads: int) -> Any:
        interpreter_cls, _ = interpreter_api()
        interp = interpreter_cls(
            model_content=model,
            num_threads=max(1, threads),
            experimental_delegates=[self._delegate()],
        )
        interp.allocate_tensors()
        return interp
