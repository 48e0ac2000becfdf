"""Every bad bundle is refused with a clear message, and nothing on disk changes."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from zeke.bundles.archive import RECORD, archive_size, padded, ustar_header, write_archive
from zeke.bundles.errors import BundleError, SelfTestFailed
from zeke.bundles.install import install
from zeke.bundles.keys import generate_keypair
from zeke.bundles.verify import verify_installed

from .conftest import SLIM_MODELS, run_zeke, snapshot, write_models_dir


def members_of(bundle: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(bundle) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def canonical(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A bundle-shaped archive with exactly these members (canonical headers and padding)."""
    with open(path, "wb") as stream:
        write_archive(stream, members)
    return path


def tar_with(path: Path, good: list[tuple[str, bytes]], special: tarfile.TarInfo, at: int) -> Path:
    """Canonical ``good`` members with one non-file entry (a plain ustar header) at ``at``."""
    out = io.BytesIO()
    entry = special.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    for index, (name, data) in enumerate(good):
        if index == at:
            out.write(entry)
        out.write(ustar_header(name, len(data)) + data + b"\0" * (padded(len(data)) - len(data)))
    if at >= len(good):
        out.write(entry)
    out.write(b"\0" * (archive_size([0]) - out.tell() % RECORD))
    return _write(path, out.getvalue())


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _edited_manifest(members):
    document = json.loads(members[0][1])
    document["version"] = "v9"
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return [("bundle.json", data), *members[1:]]


CASES = {
    # name: (builder(tmp_path, good_members, make_bundle) -> Path, message regex)
    "bad-signature": (
        lambda t, m, mk: canonical(t / "x", _edited_manifest(m)),
        "signature does not verify",
    ),
    "unknown-key": (
        lambda t, m, mk: mk("v1", key=generate_keypair(t / "k", "stranger").private_path),
        "signed by key [0-9a-f]{16}, which is not trusted",
    ),
    "needs-newer-zeke": (
        lambda t, m, mk: mk("v1", min_zeke_version="99.0"),
        r"needs zeke >= 99\.0, this is zeke",
    ),
    "missing-member": (
        lambda t, m, mk: canonical(t / "x", [x for x in m if x[0] != "emotion_int8.tflite"]),
        'lacks member "emotion_int8.tflite"',
    ),
    "extra-member-at-end": (
        lambda t, m, mk: canonical(t / "x", [*m, ("extra.tflite", b"\0" * 100)]),
        'extra member "extra.tflite"',
    ),
    "extra-member-inside": (
        lambda t, m, mk: canonical(t / "x", [*m[:2], ("aaa.tflite", b"x"), *m[2:]]),
        'extra member "aaa.tflite"',
    ),
    "duplicate-member": (
        lambda t, m, mk: canonical(t / "x", [*m[:3], m[2], *m[3:]]),
        "appears twice",
    ),
    "reordered-members": (
        lambda t, m, mk: canonical(t / "x", [*m[:2], m[3], m[2], *m[4:]]),
        "missing or out of order",
    ),
    "dotdot-path": (
        lambda t, m, mk: canonical(t / "x", [*m, ("../evil.sh", b"#!/bin/sh\n")]),
        r'"\.\./evil\.sh" escapes the bundle directory \(path traversal',
    ),
    "dotdot-nested-path": (
        lambda t, m, mk: canonical(t / "x", [*m[:2], ("a/../../etc/evil", b"x"), *m[2:]]),
        "path traversal",
    ),
    "dotdot-first-member": (
        lambda t, m, mk: canonical(t / "x", [("../../root/.ssh/authorized_keys", b"k"), *m]),
        "path traversal",
    ),
    "absolute-path": (
        lambda t, m, mk: canonical(t / "x", [*m, ("/etc/cron.d/evil", b"* * * * * root x\n")]),
        '"/etc/cron.d/evil" has an absolute path',
    ),
    "symlink": (
        lambda t, m, mk: tar_with(
            t / "x", m, special("blazeface_short.tflite", tarfile.SYMTYPE, "/etc/shadow"), 2
        ),
        r'"blazeface_short.tflite" is a symbolic link \(to "/etc/shadow"\)',
    ),
    "symlink-first": (
        lambda t, m, mk: tar_with(t / "x", m, special("bundle.json", tarfile.SYMTYPE, "/x"), 0),
        "is a symbolic link",
    ),
    "hard-link": (
        lambda t, m, mk: tar_with(t / "x", m, special("x", tarfile.LNKTYPE, "/etc/passwd"), 5),
        "is a hard link",
    ),
    "device-node": (
        lambda t, m, mk: tar_with(t / "x", m, special("dev", tarfile.CHRTYPE), 2),
        "is a device node",
    ),
    "fifo": (lambda t, m, mk: tar_with(t / "x", m, special("p", tarfile.FIFOTYPE), 3), "FIFO"),
    "directory-member": (
        lambda t, m, mk: tar_with(t / "x", m, special("models", tarfile.DIRTYPE), 2),
        "is a directory",
    ),
    "oversized-manifest": (
        lambda t, m, mk: canonical(t / "x", [("bundle.json", b" " * (2 << 20)), *m[1:]]),
        "bundle.json.*larger than",
    ),
    "pax-headers": (
        lambda t, m, mk: _pax(t / "x", m),
        "non-canonical tar header",
    ),
    "trailing-garbage": (
        lambda t, m, mk: _append(mk("v1"), t / "x", b"\x01" * 512),
        "unexpected data past its end",
    ),
    "not-a-tar": (lambda t, m, mk: _write(t / "x", bytes(range(256)) * 16), "not a model bundle"),
    "empty-file": (lambda t, m, mk: _write(t / "x", b""), "too short"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _append(source: Path, path: Path, extra: bytes) -> Path:
    return _write(path, source.read_bytes() + extra)


def _pax(path: Path, members) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = {"comment": "hello"}
            tar.addfile(info, io.BytesIO(data))
    return path


def _truncations(bundle: Path) -> dict[str, int]:
    size = bundle.stat().st_size
    return {
        "inside-first-header": 300,
        "inside-manifest": 900,
        "half": size // 2,
        "inside-last-header": size - 10240 - 200,
        "one-block-short": size - 512,
        "one-byte-short": size - 1,
    }


@pytest.fixture
def good_members(make_bundle) -> list[tuple[str, bytes]]:
    return members_of(make_bundle("v1"))


def assert_refused_unchanged(bundle: Path, store, trusted, match: str) -> BundleError:
    before = snapshot(store.root)
    called = []
    with pytest.raises(BundleError, match=match) as caught:
        install(bundle, store=store, trusted=trusted, self_test=called.append)
    assert not called, "a refused bundle must never reach the self-test"
    assert snapshot(store.root) == before
    assert verify_installed(store.active_dir(), trusted).manifest.version == "v2"
    return caught.value


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_bundle_is_refused_and_nothing_changes(
    case, tmp_path, store, trusted, good_members, make_bundle
):
    builder, match = CASES[case]
    bundle = builder(tmp_path, good_members, make_bundle)
    error = assert_refused_unchanged(bundle, store, trusted, match)
    assert error.exit_code == 4
    assert error.hint  # every refusal says what to do or what happened


@pytest.mark.parametrize("where", list(_truncations(Path(__file__)).keys()))
def test_truncated_bundle_is_refused(where, tmp_path, store, trusted, make_bundle):
    good = make_bundle("v1").read_bytes()
    cut = _truncations(make_bundle("v1"))[where]
    bundle = _write(tmp_path / "cut.bundle", good[:cut])
    assert_refused_unchanged(bundle, store, trusted, "truncated|too short")


@pytest.mark.parametrize(
    "member", ["bundle.json", "bundle.sig", "blazeface_short.tflite", "emotion_int8.tflite",
               "manifest.toml"],
)  # fmt: skip
@pytest.mark.parametrize("position", [0.0, 0.5, 1.0])
def test_a_changed_byte_in_any_member_is_refused(
    member, position, tmp_path, store, trusted, good_members
):
    members = []
    for name, data in good_members:
        if name == member:
            index = min(int(len(data) * position), len(data) - 1)
            data = data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]
        members.append((name, data))
    expected = {
        "bundle.json": "signature does not verify",
        "bundle.sig": "bundle.sig is malformed|not trusted|does not verify",
    }.get(member, f'"{member}" failed its sha256 check')
    assert_refused_unchanged(canonical(tmp_path / "x", members), store, trusted, expected)


def test_failing_self_test_is_refused_and_old_bundle_stays(tmp_path, store, trusted, keypair):
    """A signed, intact bundle whose emotion labels are scrambled fails the real self-test."""
    from zeke.bundles.pack import pack_directory

    def scramble(document):
        labels = document["models"]["emotion_int8"]["labels"]
        document["models"]["emotion_int8"]["labels"] = labels[::-1]  # "happy" -> "surprise"

    source = write_models_dir(tmp_path / "scrambled", SLIM_MODELS, edit=scramble)
    bundle = pack_directory(source, keypair.private_path, tmp_path / "s.bundle", version="v3").path
    before = snapshot(store.root)
    with pytest.raises(SelfTestFailed, match=r"self-test failed: .*emotion.*v2 stays active"):
        install(bundle, store=store, trusted=trusted)
    after = snapshot(store.root)
    # The only change is the failure record in state.json: no staging leftovers, same link.
    assert {k: v for k, v in after.items() if k != "state.json"} == {
        k: v for k, v in before.items() if k != "state.json"
    }
    state = store.read_state()
    assert state.active == "v2" and state.previous == "v1"
    assert "v3" not in state.bundles
    assert state.failed[-1].version == "v3" and state.failed[-1].kind == "self-test"
    assert store.active_version() == "v2"


CLI_CASES = ["bad-signature", "unknown-key", "dotdot-path", "symlink", "needs-newer-zeke"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_refusal_is_one_clear_line(case, tmp_path, store, env, good_members, make_bundle):
    builder, match = CASES[case]
    bundle = builder(tmp_path, good_members, make_bundle)
    before = snapshot(store.root)
    done = run_zeke("models", "install", str(bundle), env=env)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 3
    import re

    assert re.search(match, " ".join(lines))
    assert snapshot(store.root) == before


def test_cli_refuses_truncated_download_copy(tmp_path, store, env, make_bundle):
    data = make_bundle("v1").read_bytes()
    bundle = _write(tmp_path / "cut.bundle", data[: len(data) // 3])
    done = run_zeke("models", "verify", str(bundle), env=env)
    assert done.returncode == 4
    assert "truncated" in done.stderr and "Traceback" not in done.stderr
