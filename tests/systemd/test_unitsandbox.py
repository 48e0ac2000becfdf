"""The manager-less sandbox reads units the way systemd does and filters what it says."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .unitsandbox import UnitFile, have_sandbox_tools, sandbox_command, syscall_policy


def write_unit(tmp_path, body: str):
    path = tmp_path / "probe.service"
    path.write_text(textwrap.dedent(body))
    return path


def test_assignments_accumulate_and_an_empty_one_resets(tmp_path):
    unit = UnitFile(
        write_unit(
            tmp_path,
            """
            [Unit]
            Conflicts=getty@tty1.service
            [Service]
            # a comment
            SupplementaryGroups=video
            SupplementaryGroups=apex plugdev
            CapabilityBoundingSet=CAP_NET_RAW
            CapabilityBoundingSet=
            NoNewPrivileges=yes
            """,
        )
    )
    assert unit.words("SupplementaryGroups") == ["video", "apex", "plugdev"]
    assert unit.assigned("CapabilityBoundingSet") and unit.words("CapabilityBoundingSet") == []
    assert unit.flag("NoNewPrivileges") and not unit.flag("PrivateNetwork")
    assert unit.words("Conflicts", section="Unit") == ["getty@tty1.service"]


@pytest.mark.skipif(have_sandbox_tools() is not None, reason="needs systemd-analyze")
def test_system_call_filter_follows_systemd_semantics(tmp_path):
    allow = UnitFile(
        write_unit(
            tmp_path,
            """
            [Service]
            SystemCallFilter=@system-service
            SystemCallFilter=~@privileged @resources
            """,
        )
    )
    is_allow, names = syscall_policy(allow)
    assert is_allow
    assert {"read", "openat", "ioctl", "mmap", "execve"} <= names  # @system-service
    assert not {"setuid", "chown", "setpriority", "sched_setaffinity"} & names  # removed
    deny = UnitFile(write_unit(tmp_path, "[Service]\nSystemCallFilter=~@mount\n"))
    is_allow, names = syscall_policy(deny)
    assert not is_allow and {"mount", "umount2", "pivot_root"} <= names


PROBE = textwrap.dedent(
    """
    import errno, json, socket
    out = {}
    for name, family, kind in [("inet", socket.AF_INET, socket.SOCK_DGRAM),
                               ("packet", socket.AF_PACKET, socket.SOCK_RAW)]:
        try:
            socket.socket(family, kind).close()
            out[name] = "ok"
        except OSError as exc:
            out[name] = errno.errorcode[exc.errno]
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(have_sandbox_tools() is not None, reason=have_sandbox_tools() or "")
@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("RestrictAddressFamilies=~AF_PACKET", {"inet": "ok", "packet": "EAFNOSUPPORT"}),
        ("RestrictAddressFamilies=AF_UNIX AF_PACKET", {"inet": "EAFNOSUPPORT", "packet": "ok"}),
        ("RestrictAddressFamilies=AF_UNIX", {"inet": "EAFNOSUPPORT", "packet": "EAFNOSUPPORT"}),
    ],
)
def test_address_family_lists_both_ways(tmp_path, setting, expected):
    unit = write_unit(tmp_path, f"[Service]\n{setting}\n")
    result = subprocess.run(
        sandbox_command(unit, [sys.executable, "-c", PROBE]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
