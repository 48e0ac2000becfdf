"""Hostile bundles for ``zeke models verify`` and ``zeke models install``.

Generated cases: byte-level mutations of a good bundle (the fuzz strategies); bundles *signed
by the trusted key* whose manifest still lists path traversal, absolute paths, odd names or
impossible sizes (the signature must not be the only defence); links, devices, FIFOs and
directories inside the archive at every position; forged, malformed, foreign and nested
signature documents; truncations at every block boundary; archives of other kinds; and
special paths (FIFOs, devices, directories, sockets, broken links, over-long, markup and
non-UTF-8 names, a sparse file larger than any bundle). Every case goes through ``install``
in-process, where only ``BundleError`` may come out and the store must stay byte-for-byte
unchanged; a sample also goes through the real ``zeke models verify`` and
``zeke models install``, judged by ``refused`` and ``tree_state``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import re
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile import refused, tree_state, zeke
from zeke.bundles.archive import BLOCK
from zeke.bundles.errors import BundleError
from zeke.bundles.install import install
from zeke.bundles.keys import generate_keypair, load_private_key, sign
from zeke.bundles.manifest import canonical_json
from zeke.bundles.verify import verify_bundle, verify_installed
from zeke.errors import ZekeError

from .test_fuzz import mutations
from .test_refusals import canonical, members_of, special, tar_with


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    message: str = ""


def _signed(members, keypair, edit) -> list[tuple[str, bytes]]:
    """The members with the manifest edited by ``edit`` and signed again by the trusted key."""
    document = json.loads(members[0][1])
    edit(document)
    manifest = canonical_json(document)
    signature = sign(load_private_key(keypair.private_path), manifest)
    return [("bundle.json", manifest), ("bundle.sig", signature), *members[2:]]


def _renamed(members, keypair, old: str, new: str) -> list[tuple[str, bytes]]:
    def edit(doc):
        for entry in doc["files"]:
            if entry["path"] == old:
                entry["path"] = new
        doc["files"].sort(key=lambda e: e["path"])

    signed = _signed(members, keypair, edit)
    body = [(new if name == old else name, data) for name, data in signed[2:]]
    return [*signed[:2], *sorted(body)]


def _sig_doc(**fields) -> bytes:
    base = {"algorithm": "ed25519", "key_id": "0" * 16, "signature": base64.b64encode(bytes(64))}
    base.update(fields)
    base["signature"] = (
        base["signature"].decode() if isinstance(base["signature"], bytes) else base["signature"]
    )
    return json.dumps(base).encode()


def _flip_signature(sig: bytes) -> bytes:
    """The same signature document with one bit of the signature itself flipped."""
    doc = json.loads(sig)
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[0] ^= 0x01
    doc["signature"] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(doc).encode()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", name)[:60]


def build_cases(root: Path, good: Path, other: Path, keypair) -> list[Case]:
    rng = random.Random(131313)
    data = good.read_bytes()
    members = members_of(good)
    names = [name for name, _ in members]
    cases: list[Case] = []

    def add(name: str, blob: bytes, message: str = "") -> None:
        path = root / f"{len(cases):03d}-{_slug(name)}.bundle"
        path.write_bytes(blob)
        cases.append(Case(name, path, message))

    def add_members(name: str, items, message: str = "") -> None:
        path = root / f"{len(cases):03d}-{_slug(name)}.bundle"
        try:
            canonical(path, items)
        except BundleError:  # a name the packer refuses: the tarfile module writes it anyway
            _tarfile_archive(path, items)
        cases.append(Case(name, path, message))

    def add_path(name: str, path: Path, message: str = "") -> None:
        cases.append(Case(name, path, message))

    for index, (strategy, blob) in enumerate(rng.sample(mutations(data, rng), 110)):
        add(f"mutation-{strategy}-{index}", blob)

    model = names[2]
    for evil in (
        "../evil.tflite",
        "a/../../evil",
        "/etc/cron.d/evil",
        "./x.tflite",
        "x/./y",
        "a//b",
        "..",
        ".",
        "",
        "x\\..\\..\\evil",
        "x\0y",
        "n" * 101,
        "a/b/c/d/e/f",
        "CON",
        "x/",
        " leading",
        "-rf",
    ):
        add_members(f"signed-path-{evil[:12]!r}", _renamed(members, keypair, model, evil))
    for field, value in (
        ("size", 2**40),
        ("size", -1),
        ("size", 1.5),
        ("sha256", "0" * 63),
        ("sha256", "Z" * 64),
        ("path", None),
        ("path", 5),
    ):

        def edit(doc, field=field, value=value):
            doc["files"][0][field] = value

        add_members(f"signed-file-{field}-{value!r}"[:40], _signed(members, keypair, edit))
    for key, value in (
        ("format", 2),
        ("format", None),
        ("files", []),
        ("files", None),
        ("version", ""),
        ("version", "../../x"),
        ("version", "v" * 300),
        ("name", "[/]"),
        ("min_zeke_version", "99"),
        ("min_zeke_version", "x.y"),
        ("extra", 1),
        ("models", {"evil": {"file": "../x"}}),
        ("models", []),
    ):

        def edit(doc, key=key, value=value):
            doc[key] = value

        add_members(f"signed-{key}-{value!r}"[:40], _signed(members, keypair, edit))
    add_members(
        "signed-many-files",
        _signed(
            members,
            keypair,
            lambda d: d["files"].extend(
                {"path": f"f{i:04d}", "size": 1, "sha256": "0" * 64} for i in range(400)
            ),
        ),
    )
    private = load_private_key(keypair.private_path)
    for label, manifest in (
        ("deep-array", b"[" * 5000 + b"]" * 5000),
        ("deep-object", b'{"a":' * 3000 + b"1" + b"}" * 3000),
        ("huge-int", b'{"format": ' + b"1" * 5000 + b"}"),
        ("not-utf8", b"\xff" * 100),
        ("array", b"[]"),
        ("nan", b'{"format": NaN}'),
    ):
        add_members(
            f"signed-manifest-{label}",
            [("bundle.json", manifest), ("bundle.sig", sign(private, manifest)), *members[2:]],
        )

    for kind, link in (
        (tarfile.SYMTYPE, "/etc/shadow"),
        (tarfile.SYMTYPE, "../../x"),
        (tarfile.LNKTYPE, "/etc/passwd"),
        (tarfile.CHRTYPE, ""),
        (tarfile.BLKTYPE, ""),
        (tarfile.FIFOTYPE, ""),
        (tarfile.DIRTYPE, ""),
        (b"g", ""),
        (b"x", ""),
        (b"L", ""),
        (b"S", ""),
        (b"7", ""),
    ):
        for at in range(len(members) + 1):
            entry = special(names[at] if at < len(names) else "zz", kind, link)
            path = tar_with(
                root / f"{len(cases):03d}-special-{kind!r}-{at}.bundle", members, entry, at
            )
            cases.append(Case(f"archive-{kind!r}-{link}-at-{at}", path))

    sig = members[1][1]
    for label, blob in (
        ("empty", b""),
        ("not-json", b"\xff\xfe"),
        ("nested", b"[" * 4000),
        ("nested-object", b'{"a":' * 1500 + b"1" + b"}" * 1500),
        ("huge-int", b'{"key_id": ' + b"9" * 4000 + b"}"),
        ("zero-sig", _sig_doc()),
        ("alg", _sig_doc(algorithm="rsa")),
        ("short-sig", _sig_doc(signature=base64.b64encode(b"x"))),
        ("extra", sig[:-2] + b',"x":1}\n'),
        ("flipped", _flip_signature(sig)),
    ):
        add_members(f"sig-{label}", [members[0], ("bundle.sig", blob), *members[2:]])
    foreign = members_of(other)
    add_members("sig-of-another-bundle", [members[0], foreign[1], *members[2:]])
    add_members("manifest-of-another-bundle", [foreign[0], members[1], *members[2:]])
    stranger = generate_keypair(root / "stranger", "stranger")
    add_members("signed-by-stranger", _signed(members, stranger, lambda d: None))

    for cut in range(0, len(data), max(BLOCK, len(data) // 30 // BLOCK * BLOCK)):
        add(f"truncated-{cut}", data[:cut])
    add("gzip", gzip.compress(data))
    add("zip", b"PK\x03\x04" + rng.randbytes(4096))
    add("zeros", bytes(len(data)))
    add("tar-of-tar", _tar_of(data))

    fifo = root / "fifo.bundle"
    os.mkfifo(fifo)
    add_path("fifo", fifo, "FIFO")
    (root / "to-fifo.bundle").symlink_to(fifo)
    add_path("link-to-fifo", root / "to-fifo.bundle", "FIFO")
    add_path("dev-zero", Path("/dev/zero"), "character device")
    add_path("dev-urandom", Path("/dev/urandom"), "character device")
    add_path("directory", root, "is a directory")
    (root / "dangling.bundle").symlink_to(root / "nowhere.bundle")
    add_path("dangling-link", root / "dangling.bundle", "does not exist")
    add_path("missing", root / "missing.bundle", "does not exist")
    add_path("name-max", root / ("b" * 256 + ".bundle"), "longer than the filesystem allows")
    sock_path = root / "sock.bundle"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    add_path("socket", sock_path, "socket")
    sparse = root / "sparse.bundle"
    with open(sparse, "wb") as stream:
        stream.truncate(3 << 30)
    add_path("sparse-3g", sparse, "larger than")
    for name in ("x[/]y.bundle", "[bold]b.bundle", os.fsdecode(b"\xff\xfe.bundle"), "a\nb.bundle"):
        path = root / "named" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[: len(data) // 2])
        add_path(f"named-{name!r}", path, "truncated")
    return cases


def _tarfile_archive(path: Path, items) -> None:
    import io

    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, blob in items:
            info = tarfile.TarInfo(name.replace("\0", "?"))
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def _tar_of(data: bytes) -> bytes:
    import io

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("inner.bundle")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def cases(tmp_path_factory, slim_models, make_bundle, keypair) -> list[Case]:
    root = tmp_path_factory.mktemp("hostile-bundles")
    return build_cases(root, make_bundle("v3"), make_bundle("v1"), keypair)


def test_there_are_enough_cases(cases):
    assert len(cases) >= 200
    assert len({c.name for c in cases}) == len(cases)


def test_every_case_is_refused_in_process_and_the_store_is_unchanged(cases, store, trusted):
    before = tree_state(store.root)
    reached: list[object] = []
    for case in cases:
        try:
            install(case.path, store=store, trusted=trusted, self_test=reached.append)
        except BundleError as err:
            assert err.message and "\n" not in err.message, case.name
            assert case.message in err.message, f"{case.name}: {err.message}"
        except ZekeError as err:  # pragma: no cover - the wrong family still fails the test
            pytest.fail(f"{case.name}: {type(err).__name__}: {err}")
        else:
            pytest.fail(f"{case.name} was installed")
        assert tree_state(store.root) == before, case.name
    assert reached == []
    assert verify_installed(store.active_dir(), trusted).manifest.version == "v2"


def test_every_case_is_refused_by_verify(cases, trusted):
    for case in cases:
        with pytest.raises(BundleError):
            verify_bundle(case.path, trusted)


def _sample(cases: list[Case]) -> list[Case]:
    fixed = [c for c in cases if not c.name.startswith(("mutation", "archive", "truncated"))]
    return (
        fixed[::3]
        + [c for c in cases if c.name in ("fifo", "dev-zero", "sparse-3g")]
        + [c for c in cases if c.name.startswith(("mutation", "archive", "truncated"))][::25]
    )


@pytest.mark.parametrize("command", ["verify", "install"])
def test_a_sample_through_the_cli_is_refused_and_nothing_changes(cases, store, env, command):
    sample = list(dict.fromkeys(_sample(cases)))
    assert len(sample) >= 20
    before = tree_state(store.root)
    for case in sample:
        ended = zeke("models", command, case.path, env=env, deadline=30)
        assert refused(ended), ended.describe()
        assert ended.returncode == BundleError.exit_code, ended.describe()
        assert tree_state(store.root) == before, case.name


def test_a_markup_path_is_printed_as_written(tmp_path, env, make_bundle):
    path = tmp_path / "x[" / "]y[bold].bundle"
    path.parent.mkdir()
    path.write_bytes(make_bundle("v3").read_bytes())
    ended = zeke("models", "verify", path, env=env)
    assert ended.returncode == 0, ended.describe()
    assert f"ok {path}:" in ended.stdout
