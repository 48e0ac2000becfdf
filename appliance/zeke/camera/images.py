"""A photo, or a directory of photos, as a camera.

A directory is read in natural order (img2 before img10) and re-scanned at each pass, so
photos dropped into it while looping are picked up. A file that vanished or does not decode
is skipped and counted; a pass that yields nothing at all raises ``SourceLost``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from zeke.camera.base import Frame, Source, SourceLost
from zeke.camera.pacing import Pacer
from zeke.camera.uri import IMAGE_SUFFIXES
from zeke.camera.video import check_readable_file
from zeke.errors import InputError
from zeke.vision.imageio import read_image as load_image


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(directory: Path) -> list[Path]:
    """Image files directly inside ``directory``, in natural order."""
    try:
        entries = list(directory.iterdir())
    except OSError as err:
        raise InputError(f"cannot list {directory}: {err.strerror}") from None
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(images, key=_natural_key)


def read_image(path: Path):
    """Decode one image as HxWx3 BGR (EXIF rotation applied), or ``None`` if it cannot be used.

    The same checks as ``zeke detect`` (regular file, size from the header, pixel limit), so a
    decompression bomb dropped into a watched folder is skipped, never decoded.
    """
    try:
        return load_image(path)
    except InputError:
        return None


class ImageSource(Source):
    """One image file (``kind="image"``) or a directory of them (``kind="images"``).

    ``fps`` paces delivery (default: as fast as they decode); ``loop`` starts over at the end.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        uri: str | None = None,
        *,
        loop: bool = False,
        fps: float | None = None,
        pace: bool = True,
        **_camera_options: Any,
    ):
        super().__init__(uri or str(path))
        self.path = Path(path)
        self.kind = "images" if self.path.is_dir() else "image"
        self.loop = loop
        self.fps = fps if (fps and pace) else None
        self.skipped = 0
        self.passes = 0
        self._queue: list[Path] = []
        self._delivered_in_pass = 0
        self._last: Path | None = None
        self._pacer = Pacer(self.fps) if self.fps else None
        self.width = self.height = 0

    def _scan(self) -> list[Path]:
        if self.kind == "image":
            return [self.path]
        return list_images(self.path)

    def _open(self) -> None:
        if self.kind == "image":
            check_readable_file(self.path, "image")
            try:  # the reason too: corrupt, a bomb, too small
                load_image(self.path)
            except InputError as err:
                raise InputError(
                    f"cannot decode {err.message}",
                    hint=err.hint or "use a JPEG, PNG, BMP, WebP or TIFF file",
                ) from None
        elif not self.path.exists():
            raise InputError(f"no such directory: {self.path}")
        self._queue = self._scan()
        if not self._queue:
            raise InputError(
                f"no images in {self.path}",
                hint=f"put image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it",
            )
        self.passes, self._delivered_in_pass = 1, 0
        if self._pacer is not None:
            self._pacer.reset()

    def _wait_until_due(self) -> None:
        if self._pacer is not None and self._pacer.wait(self._next_index) > 1.0:
            self._pacer.restart(self._next_index)

    def _next_pass(self) -> bool:
        if self._delivered_in_pass == 0:
            raise SourceLost(
                f"no readable images left in {self.path}",
                hint="the files were removed or replaced by ones that do not decode",
            )
        if not self.loop:
            return False
        self._queue = self._scan()
        self.passes += 1
        self._delivered_in_pass = 0
        return bool(self._queue) or self._next_pass()

    def _read(self) -> Frame | None:
        self._wait_until_due()
        while True:
            if not self._queue and not self._next_pass():
                return None
            path = self._queue.pop(0)
            image = read_image(path)
            if image is None:
                self.skipped += 1
                continue
            self._delivered_in_pass += 1
            self._last = path
            self.height, self.width = image.shape[:2]
            return self._frame(image)

    def _close(self) -> None:
        self._queue = []

    @property
    def current_path(self) -> Path | None:
        """The file the last frame came from (lets ``zeke detect dir/`` name each result)."""
        return self._last

    def _describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "loop": self.loop,
            "skipped": self.skipped,
            "passes": self.passes,
            "current": str(self._last) if self._last else None,
        }
