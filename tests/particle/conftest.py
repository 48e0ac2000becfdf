"""Fixtures for the Particle tests: simulated devices on ptys, synthesised apps, the CLI.

Device timers run at ``SIM_SCALE`` and host phase timeouts at ``HOST_SCALE`` of their real
values so every fault finishes in seconds; both are far above what a loaded 2-core machine
needs for a reply (the simulator answers within milliseconds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zeke.particle.flash import TIMEOUT_SCALE_ENV
from zeke.testing.particle_firmware import build_user_app
from zeke.testing.particle_sim import ParticleSimulator

from .support import HARD_TIMEOUT, HOST_SCALE, SIM_SCALE, CliRun, call_with_deadline


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Callable[..., ParticleSimulator]]:
    """Start simulated devices (stable link in tmp_path); all are stopped afterwards."""
    started: list[ParticleSimulator] = []

    def start(platform: str = "xenon", device_os: str = "1.5.2", **options) -> ParticleSimulator:
        options.setdefault("time_scale", SIM_SCALE)
        options.setdefault("link_path", tmp_path / f"ttyACM{len(started)}")
        sim = ParticleSimulator(platform, device_os, **options).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
    for sim in started:
        assert sim.error is None, f"simulator crashed: {sim.error!r}"


@pytest.fixture
def xenon_app(tmp_path: Path) -> Path:
    """An 11,012-byte Xenon application, the size of the spec's Tinker example."""
    path = tmp_path / "tinker-xenon.bin"
    path.write_bytes(build_user_app("xenon", 11012))
    return path


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make discovery list the given simulators (pyserial never lists ptys)."""

    def use(*devices: ParticleSimulator) -> None:
        monkeypatch.setattr(
            "zeke.particle.discovery.system_comports",
            lambda: [info for sim in devices for info in sim.comports()],
        )
        monkeypatch.setenv(TIMEOUT_SCALE_ENV, str(HOST_SCALE))

    return use


@pytest.fixture
def zeke_run(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run ``zeke ARGS`` in-process through the real entry point (``zeke.cli.main.run``).

    Any exception other than the ``SystemExit`` that ``run`` raises is a traceback a user
    would see, and fails the test.
    """
    from zeke.cli import main

    def run(*args: str, timeout: float = HARD_TIMEOUT) -> CliRun:
        def invoke() -> int:
            saved = sys.argv
            sys.argv = ["zeke", *args]
            try:
                main.run()
            except SystemExit as done:
                return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            finally:
                sys.argv = saved
            return 0

        capsys.readouterr()
        box = call_with_deadline(invoke, timeout)
        out = capsys.readouterr()
        if "error" in box:
            raise AssertionError(f"zeke {' '.join(args)} raised (traceback)") from box["error"]
        return CliRun(box["value"], out.out, out.err, box["elapsed"])

    return run
