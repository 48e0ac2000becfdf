"""Camera URIs: every accepted form, and a clear error for every bad one."""

from __future__ import annotations

import pytest

from zeke.camera.uri import parse_uri, redact
from zeke.errors import UsageError


@pytest.mark.parametrize(
    ("uri", "kind", "target"),
    [
        ("v4l2:///dev/video0", "v4l2", "/dev/video0"),
        (
            "v4l2:///dev/v4l/by-id/usb-cam-video-index0",
            "v4l2",
            "/dev/v4l/by-id/usb-cam-video-index0",
        ),
        ("v4l2://2", "v4l2", "/dev/video2"),
        ("/dev/video1", "v4l2", "/dev/video1"),
        ("0", "v4l2", "/dev/video0"),
        ("csi://0", "csi", "0"),
        ("csi://1", "csi", "1"),
        ("rtsp://cam.local:554/stream1", "rtsp", "rtsp://cam.local:554/stream1"),
        ("rtsps://10.0.0.2/live", "rtsp", "rtsps://10.0.0.2/live"),
        ("auto", "auto", ""),
        ("demo", "demo", ""),
    ],
)
def test_device_and_network_forms(uri, kind, target):
    spec = parse_uri(uri)
    assert (spec.kind, spec.target, spec.uri) == (kind, target, uri)


def test_file_forms_are_classified_by_what_they_name(tmp_path, short_clip, photo_dir):
    photo = photo_dir / "img1.png"
    assert parse_uri(f"file://{short_clip}").kind == "video"
    assert parse_uri(str(short_clip)).kind == "video"
    assert parse_uri(f"file://{photo}").kind == "image"
    assert parse_uri(str(photo)).target == str(photo)
    assert parse_uri(str(photo_dir)).kind == "images"
    assert parse_uri(f"file://{photo_dir}").kind == "images"
    # a relative file URI (jetson-inference style) stays relative
    assert parse_uri("file://clips/a.mp4").target == "clips/a.mp4"


def test_query_options_are_typed():
    spec = parse_uri("v4l2:///dev/video0?width=1280&height=720&fps=30&format=mjpg")
    assert spec.options == {"width": 1280, "height": 720, "fps": 30.0, "format": "MJPG"}
    assert parse_uri("file:///x/clip.mp4?loop=1&pace=no").options == {"loop": True, "pace": False}


@pytest.mark.parametrize(
    ("uri", "message", "hint"),
    [
        ("", "empty camera URI", "v4l2:///dev/video0"),
        ("ftp://host/x.mp4", "unsupported camera URI scheme 'ftp://'", "rtsp://"),
        ("v4l2://dev/video0", "names no device", "three slashes"),
        ("csi://left", "needs a sensor number", "csi://0"),
        ("file://", "names no file", "file:///path"),
        ("rtsp:///stream", "names no host", "rtsp://192.168.1.20"),
        ("v4l2:///dev/video0?widht=640", "unknown option 'widht'", "did you mean 'width'"),
        ("v4l2:///dev/video0?width=-5", "width='-5' must be a positive int", "width=640"),
        ("v4l2:///dev/video0?format=MJPEG", "not a four-character pixel format", "MJPG"),
        ("file:///a.mp4?loop=perhaps", "is not a yes/no value", "loop=1"),
    ],
)
def test_bad_uris_say_what_is_accepted(uri, message, hint):
    with pytest.raises(UsageError) as caught:
        parse_uri(uri)
    assert message in caught.value.message
    assert hint in (caught.value.hint or "")
    assert caught.value.exit_code == 2


def test_redact_hides_passwords_only():
    assert redact("rtsp://admin:hunter2@10.0.0.5:554/h264") == "rtsp://admin:***@10.0.0.5:554/h264"
    assert redact("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"
    assert redact("/dev/video0") == "/dev/video0"
    with pytest.raises(UsageError) as caught:
        parse_uri("rtsp://admin:hunter2@/x")
    assert "hunter2" not in str(caught.value)
