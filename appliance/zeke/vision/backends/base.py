"""The inference backend interface: turn verified model bytes into a ready interpreter."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and why (or why not) in one line."""

    ok: bool
    reason: str


class Backend(ABC):
    """One way of running a TFLite model (CPU, Edge TPU, ...)."""

    name: ClassVar[str]

    @abstractmethod
    def probe(self) -> Availability:
        """Check, cheaply and without raising, whether this backend can run here."""

    @abstractmethod
    def interpreter(self, model: bytes, threads: int) -> Any:
        """Build an allocated interpreter for the model bytes; raise on failure."""


def interpreter_api() -> tuple[Any, Any]:
    """(Interpreter, load_delegate) from ai-edge-litert, else from tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate
    except ImportError:  # pragma: no cover - fallback for boards with only tflite-runtime
        try:
            from tflite_runtime.interpreter import Interpreter, load_delegate
        except ImportError:
            from zeke.errors import ModelError

            raise ModelError(
                "no TFLite runtime is installed",
                hint="pip install ai-edge-litert (tflite-runtime works as a fallback)",
            ) from None
    return Interpreter, load_delegate
