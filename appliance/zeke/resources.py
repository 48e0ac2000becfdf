"""Files that ship inside the package: sample photos and the demo clip."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLES_DIR = DATA_DIR / "samples"
DEMO_CLIP = DATA_DIR / "demo.mp4"
DEMO_TRUTH = DATA_DIR / "demo.json"


def sample_photos() -> list[Path]:
    """The bundled public-domain sample photos, sorted by name."""
    return sorted(p for p in SAMPLES_DIR.glob("*.jpg"))
