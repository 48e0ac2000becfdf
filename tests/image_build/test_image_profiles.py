"""Profiles: every shipped one validates; every kind of mistake gets a clear, located error."""

from __future__ import annotations

import pytest

from image_build.errors import ProfileError
from image_build.profile import available_profiles, load_profile

BOARDS = ["coral-devboard", "jetson-orin-jp6", "qemu-amd64", "qemu-arm64", "raspberrypi-arm64"]


def test_every_board_has_a_valid_profile():
    assert available_profiles() == BOARDS
    for name in BOARDS:
        profile = load_profile(name)
        assert profile.name == name
        assert "zeke-firstboot.service" in profile.zeke.units
        assert profile.layout.partitions[-1].mountpoint == "/"


def test_profiles_say_what_each_board_is():
    rpi = load_profile("raspberrypi-arm64")
    assert rpi.zeke.system_site_packages, "picamera2 is apt-only: the venv must see it"
    assert "python3-picamera2" in rpi.sources[-1].packages and rpi.sources[-1].vendor
    coral = load_profile("coral-devboard")
    assert coral.distribution.suite == "bookworm", "Mendel's own Debian 10 is too old for zeke"
    vendor = {p for s in coral.vendor_sources for p in s.packages}
    assert {"libedgetpu1-std", "gasket-dkms", "uboot-imx"} <= vendor
    jetson = load_profile("jetson-orin-jp6")
    assert (jetson.distribution.name, jetson.distribution.suite) == ("ubuntu", "jammy")
    assert jetson.distribution.python.startswith("3.10")
    assert load_profile("qemu-arm64").qemu.binary == "qemu-system-aarch64"


def test_a_minimal_profile_loads(write_profile, minimal_profile):
    profile = load_profile(write_profile(minimal_profile.format(name="test-board")))
    assert profile.hostname == "zeke" and profile.qemu.machine == "q35"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('architecture = "amd64"', 'architecture = "riscv"'),
            "distribution.architecture: Input should be 'amd64' or 'arm64'",
        ),
        (
            ('hostname = "zeke"', 'hostname = "zeke"\ncolour = "blue"'),
            "colour: Extra inputs are not permitted",
        ),
        (
            ('packages = ["systemd-sysv", "python3"]', 'packages = ["systemd-sysv", "Python 3"]'),
            "packages: 'Python 3' is not a valid Debian package name",
        ),
        (
            ('packages = ["systemd-sysv", "python3"]', 'packages = ["python3", "python3"]'),
            "packages: listed twice: python3",
        ),
        (
            ('mountpoint = "/"\n', 'mountpoint = "/srv"\n'),
            "layout: exactly one partition must have mountpoint '/'",
        ),
        (
            ('mirror = "http://deb.debian.org/debian"', 'mirror = "deb.debian.org/debian"'),
            "distribution.mirror: must be an http:// or https:// URL",
        ),
        (
            ('glibc = "2.36"', 'glibc = "2.36"\nsnapshot = "yesterday"'),
            "distribution.snapshot: must look like 20250520T000000Z",
        ),
        (
            ('[qemu]\nbinary = "qemu-system-x86_64"\nmachine = "q35"\ncpu = "max"\n', ""),
            "kernel.boot = 'qemu-direct' needs a [qemu] table",
        ),
        (
            ('units = ["zeke-firstboot.service"]', 'units = ["zeke firstboot"]'),
            "zeke.units: 'zeke firstboot' is not a systemd unit file name",
        ),
        (
            ('filesystem = "ext4"', 'filesystem = "vfat"'),
            "layout: the root partition must be ext4 or ext2",
        ),
    ],
)
def test_mistakes_are_named_with_their_field(write_profile, minimal_profile, change, expected):
    old, new = change
    text = minimal_profile.format(name="test-board")
    assert old in text
    with pytest.raises(ProfileError) as info:
        load_profile(write_profile(text.replace(old, new)))
    assert expected in info.value.message
    assert "test-board.toml" in info.value.message
    assert info.value.hint


def test_root_partition_must_come_last(write_profile, minimal_profile):
    text = minimal_profile.format(name="test-board")
    boot = text[
        text.index('[[layout.partitions]]\nname = "boot"') : text.index(
            '[[layout.partitions]]\nname = "root"'
        )
    ]
    root_part = text[text.index('[[layout.partitions]]\nname = "root"') : text.index("[zeke]")]
    swapped = text.replace(boot + root_part, root_part + boot)
    with pytest.raises(ProfileError, match="root partition must come last"):
        load_profile(write_profile(swapped))


def test_vendor_source_needs_a_keyring(write_profile, minimal_profile):
    text = minimal_profile.format(name="test-board") + (
        '\n[[sources]]\nname = "acme"\nuri = "https://apt.acme.example"\nsuites = ["stable"]\n'
        'vendor = true\npackages = ["acme-kernel"]\n'
    )
    # [[sources]] after [zeke] would belong to zeke: put it before.
    text = text.replace("\n[[sources]]", "\n[[sources]]", 1)
    head, tail = text.split("[zeke]", 1)
    zeke_block, sources = tail.split("\n[[sources]]", 1)
    text = head + "[[sources]]" + sources + "\n[zeke]" + zeke_block
    with pytest.raises(ProfileError, match="vendor source 'acme' needs a keyring"):
        load_profile(write_profile(text))


def test_name_must_match_the_file(write_profile, minimal_profile):
    with pytest.raises(ProfileError, match="is named 'other'") as info:
        load_profile(write_profile(minimal_profile.format(name="other")))
    assert "rename" in info.value.hint


def test_broken_toml_and_unknown_profiles(write_profile):
    with pytest.raises(ProfileError, match="is not valid TOML"):
        load_profile(write_profile("name = [unclosed"))
    with pytest.raises(ProfileError, match="no profile 'banana-pi'") as info:
        load_profile("banana-pi")
    assert "qemu-amd64" in info.value.hint


def test_cli_prints_one_line_errors_without_a_traceback(write_profile, minimal_profile, run_cli):
    bad = write_profile(minimal_profile.format(name="test-board").replace('"amd64"', '"sparc"', 1))
    proc = run_cli("plan", str(bad))
    assert proc.returncode == 11
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: profile test-board.toml is invalid")
    assert "distribution.architecture" in lines[0]
    assert lines[1].startswith("hint:")
    proc = run_cli("plan", "banana-pi")
    assert proc.returncode == 11 and "no profile 'banana-pi'" in proc.stderr
