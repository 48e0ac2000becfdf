"""Camera discovery against fixture trees of real boards, and the real ioctl where it can run."""

from __future__ import annotations

import os

import pytest

from zeke.camera.discovery import (
    CAP_DEVICE_CAPS,
    CAP_META_CAPTURE,
    CAP_STREAMING,
    CAP_VIDEO_CAPTURE,
    discover_cameras,
    list_v4l2,
    pack_querycap,
    parse_querycap,
    querycap,
)
from zeke.testing.fake_boards import build


@pytest.fixture
def board(tmp_path, request):
    return build(request.param, tmp_path / request.param)


@pytest.mark.parametrize("board", ["generic-x86"], indirect=True)
def test_usb_webcam_is_found_and_its_metadata_node_skipped(board):
    nodes = {d.node: d for d in list_v4l2(board.root)}
    assert nodes["video0"].role == "capture" and nodes["video1"].role == "metadata"
    assert nodes["video0"].driver == "uvcvideo" and nodes["video0"].bus == "usb"
    assert nodes["video0"].usb_id == "046d:082d"
    assert nodes["video0"].caps.names == ["video-capture", "ext-pix-format", "streaming"]
    assert nodes["video1"].caps.metadata_only
    cameras = discover_cameras(board.root)
    assert len(cameras) == 1
    cam = cameras[0]
    assert cam.uri == "v4l2:///dev/video0"
    assert (
        cam.stable_uri == "v4l2:///dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_8E1F2A3F-video-index0"
    )
    assert cam.best_uri == cam.stable_uri
    assert (cam.name, cam.kind, cam.driver) == ("HD Pro Webcam C920", "usb", "uvcvideo")
    assert cam.details["usb_id"] == "046d:082d"


@pytest.mark.parametrize("board", ["raspberry-pi-5"], indirect=True)
def test_pi5_lists_its_csi_sensor_not_the_isp_nodes(board):
    nodes = list_v4l2(board.root)
    assert len(nodes) == 17
    roles = {d.node: d.role for d in nodes}
    assert roles["video19"] == "codec"
    assert {roles[f"video{i}"] for i in range(8)} == {"csi-internal"}
    cameras = discover_cameras(board.root)
    assert [c.uri for c in cameras] == ["csi://0"]
    assert cameras[0].driver == "imx708" and cameras[0].kind == "csi"
    assert cameras[0].details == {"i2c": "6-001a", "driver_bound": True}


@pytest.mark.parametrize("board", ["jetson-orin-nano"], indirect=True)
def test_jetson_lists_its_csi_sensor_from_the_vi_node(board):
    (node,) = list_v4l2(board.root)
    assert node.role == "csi-internal" and node.caps.driver == "tegra-video"
    cameras = discover_cameras(board.root)
    assert [(c.uri, c.driver, c.device) for c in cameras] == [("csi://0", "imx219", "/dev/video0")]
    assert cameras[0].details["i2c"] == "9-0010"


@pytest.mark.parametrize("board", ["coral-dev-board"], indirect=True)
def test_coral_camera_is_a_v4l2_device(board):
    cameras = discover_cameras(board.root)
    assert [(c.uri, c.kind, c.driver) for c in cameras] == [
        ("v4l2:///dev/video0", "platform", "mx6s-csi")
    ]
    assert "video-capture" in cameras[0].details["capabilities"]


def test_second_pi_camera_and_an_unbound_sensor(tmp_path):
    from zeke.testing.fake_boards import _Tree

    board = build("raspberry-pi-5", tmp_path / "pi")
    _Tree(board.root).i2c_sensor("4-0010", "imx219")  # on the other port, no driver bound
    cameras = discover_cameras(board.root)
    assert [(c.uri, c.driver) for c in cameras] == [("csi://0", "imx219"), ("csi://1", "imx708")]
    assert cameras[0].details["driver_bound"] is False


def test_no_sysfs_means_no_cameras(tmp_path):
    assert list_v4l2(tmp_path) == []
    assert discover_cameras(tmp_path, board_kind="generic") == []


def test_without_a_recorded_answer_uvc_index_decides(tmp_path):
    board = build("generic-x86", tmp_path / "pc")
    for node in ("video0", "video1"):
        (board.root / "dev" / node).unlink()
    nodes = {d.node: d for d in list_v4l2(board.root)}
    assert nodes["video0"].caps is None
    assert (nodes["video0"].role, nodes["video1"].role) == ("capture", "metadata")


def test_querycap_struct_round_trip():
    caps = CAP_VIDEO_CAPTURE | CAP_META_CAPTURE | CAP_STREAMING | CAP_DEVICE_CAPS
    data = pack_querycap(
        "uvcvideo", "Cam", "usb-1", caps, CAP_META_CAPTURE | CAP_STREAMING, 0x60601
    )
    assert len(data) == 104
    parsed = parse_querycap(data)
    assert (parsed.driver, parsed.card, parsed.bus_info, parsed.version) == (
        "uvcvideo", "Cam", "usb-1", 0x60601
    )  # fmt: skip
    assert parsed.metadata_only and not parsed.captures_video
    assert parsed.names == ["meta-capture", "streaming"]


def test_real_ioctl_on_a_char_device_that_is_not_v4l2():
    assert querycap(__import__("pathlib").Path("/dev/null")) is None  # ENOTTY, not a crash


def test_real_ioctl_on_real_video_devices_if_any():
    nodes = [f"/dev/{n}" for n in os.listdir("/dev") if n.startswith("video")]
    if not nodes:
        pytest.skip("no V4L2 devices on this machine")
    for node in nodes:
        caps = querycap(__import__("pathlib").Path(node))
        assert caps is None or caps.driver
