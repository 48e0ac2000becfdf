"""Inference backends behind one interface, and the choice between them.

``select_backend("auto")`` prefers the Edge TPU and falls back to the CPU, always with a
reason: never a crash, never a silent switch.
"""

from __future__ import annotations

from dataclasses import dataclass

from zeke.errors import UsageError
from zeke.vision.backends.base import Availability, Backend, interpreter_api
from zeke.vision.backends.cpu import CpuBackend
from zeke.vision.backends.edgetpu import EdgeTpuBackend

BACKENDS: dict[str, type[Backend]] = {"cpu": CpuBackend, "edgetpu": EdgeTpuBackend}
CHOICES = ("auto", *BACKENDS)


@dataclass(frozen=True)
class Selection:
    """The backend chosen, what was asked for, and why."""

    backend: Backend
    requested: str
    reason: str

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def fell_back(self) -> bool:
        return self.requested not in ("auto", self.backend.name)


def select_backend(requested: str = "auto") -> Selection:
    if requested not in CHOICES:
        raise UsageError(
            f"unknown backend '{requested}'", hint=f"choose one of: {', '.join(CHOICES)}"
        )
    if requested in ("auto", "edgetpu"):
        tpu = EdgeTpuBackend()
        found = tpu.probe()
        if found.ok:
            return Selection(tpu, requested, found.reason)
        cpu = CpuBackend()
        return Selection(cpu, requested, f"CPU fallback: {found.reason}")
    cpu = CpuBackend()
    return Selection(cpu, requested, "CPU requested")


__all__ = [
    "BACKENDS",
    "CHOICES",
    "Availability",
    "Backend",
    "CpuBackend",
    "EdgeTpuBackend",
    "Selection",
    "interpreter_api",
    "select_backend",
]
