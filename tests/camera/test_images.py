"""Photos as cameras: one image, a directory in natural order, skipping what will not decode."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from zeke.camera import SourceLost, open_source
from zeke.camera.images import ImageSource
from zeke.errors import InputError


def test_single_image_is_one_frame(photo_dir, astronaut_bgr):
    with open_source(str(photo_dir / "img1.png")) as source:
        frame = source.read()
        assert source.read() is None
        info = source.describe()
    assert info["kind"] == "image" and (info["width"], info["height"]) == (512, 512)
    assert np.array_equal(frame.image, astronaut_bgr)
    assert frame.index == 0


def test_single_image_loops(photo_dir):
    with open_source(str(photo_dir / "img2.jpg"), loop=True) as source:
        frames = [source.read() for _ in range(3)]
    assert [f.index for f in frames] == [0, 1, 2]


def test_directory_in_natural_order(photo_dir, astronaut_bgr, grace_hopper_bgr):
    with open_source(f"file://{photo_dir}") as source:
        names, frames = [], []
        while (frame := source.read()) is not None:
            frames.append(frame)
            names.append(source.current_path.name)
    assert names == ["img1.png", "img2.jpg", "img10.png"]
    assert np.array_equal(frames[0].image, astronaut_bgr)
    assert frames[1].image.shape == grace_hopper_bgr.shape
    assert np.array_equal(frames[2].image, cv2.flip(astronaut_bgr, 1))


def test_grey_and_alpha_images_become_bgr(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_grey.png"), np.full((40, 50), 77, np.uint8))
    cv2.imwrite(str(folder / "b_alpha.png"), np.full((40, 50, 4), 200, np.uint8))
    with ImageSource(folder) as source:
        images = [f.image for f in source]
    assert [im.shape for im in images] == [(40, 50, 3), (40, 50, 3)]
    assert images[0][0, 0].tolist() == [77, 77, 77]


def test_undecodable_and_vanished_files_are_skipped_and_counted(photo_dir):
    (photo_dir / "img3.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    source = ImageSource(photo_dir).open()
    try:
        first = source.read()
        (photo_dir / "img10.png").unlink()  # removed while the folder is being read
        rest = list(source)
        info = source.describe()
    finally:
        source.close()
    assert first is not None and len(rest) == 1  # img2 only: img3 is broken, img10 is gone
    assert info["skipped"] == 2


def test_a_looping_folder_picks_up_new_photos(photo_dir, astronaut_bgr):
    with ImageSource(photo_dir, loop=True) as source:
        for _ in range(3):
            source.read()
        cv2.imwrite(str(photo_dir / "img11.png"), astronaut_bgr)
        names = []
        for _ in range(4):
            source.read()
            names.append(source.current_path.name)
    assert names == ["img1.png", "img2.jpg", "img10.png", "img11.png"]


def test_a_folder_emptied_while_looping_is_lost(photo_dir):
    source = ImageSource(photo_dir, loop=True).open()
    try:
        source.read()
        for path in photo_dir.glob("img*"):
            path.unlink()
        with pytest.raises(SourceLost) as caught:
            for _ in range(5):
                source.read()
        assert "no readable images left" in caught.value.message
    finally:
        source.close()


def test_fps_paces_delivery(photo_dir):
    with ImageSource(photo_dir, fps=10.0, loop=True) as source:
        t0 = time.monotonic()
        for _ in range(4):
            source.read()
        assert time.monotonic() - t0 >= 3 / 10 - 0.02


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.jpg", "no such image"),
        (lambda d: d / "notes.txt", "not a video"),  # not an image suffix: read as a video
        (lambda d: _write(d / "bad.png", b"not a png"), "cannot decode"),
        (lambda d: _mkdir(d / "empty"), "no images in"),
        (lambda d: d / "nodir" / "", "no such"),
    ],
)
def test_bad_image_inputs(photo_dir, make, message):
    target = make(photo_dir)
    with pytest.raises(InputError) as caught:
        open_source(str(target))
    assert message in caught.value.message


def _write(path, data):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path
