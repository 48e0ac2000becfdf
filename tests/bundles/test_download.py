"""HTTPS download with resume against a real TLS server on 127.0.0.1."""

from __future__ import annotations

import json
import signal

import pytest

from zeke.bundles.errors import BundleError
from zeke.bundles.install import download_path, install
from zeke.bundles.verify import verify_installed

from .conftest import run_zeke, snapshot
from .https_server import HttpsServer, Served, make_certificate

PATH = "/models/v3.bundle"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server(tls, make_bundle):
    served = Served(files={PATH: make_bundle("v3").read_bytes()})
    with HttpsServer(*tls, served) as base:
        yield base + PATH, served


def test_install_over_https_reports_progress(store, trusted, server, tls):
    url, served = server
    size = len(served.files[PATH])
    seen: list[tuple[int, int | None]] = []
    result = install(
        url, store=store, trusted=trusted, cafile=tls[0], progress=lambda *a: seen.append(a)
    )
    assert result.version == "v3" and store.active_version() == "v3"
    assert seen[-1] == (size, size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert not store.downloads.exists()  # the finished download is not kept
    assert [e["status"] for e in served.log] == [200]


def test_interrupted_transfer_resumes_with_a_range_request(store, trusted, server, tls):
    url, served = server
    size = len(served.files[PATH])
    served.cut_after, served.cuts_left = size * 2 // 5, 1
    result = install(url, store=store, trusted=trusted, cafile=tls[0])
    assert result.version == "v3"
    first, second = served.log
    assert first["range"] is None and first["status"] == 200
    assert second["status"] == 206
    resumed_at = int(second["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= served.cut_after
    assert second["if_range"] == served.etag(PATH)
    verify_installed(store.active_dir(), trusted)


def test_killed_download_resumes_in_the_next_run(store, trusted, env, server, tls):
    url, served = server
    args = ("models", "install", url, "--ca-file", str(tls[0]))
    done = run_zeke(*args, env={**env, "ZEKE_BUNDLE_CRASH_AT": "download"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    part = download_path(store, url).with_name(download_path(store, url).name + ".part")
    kept = part.stat().st_size
    assert 0 < kept < len(served.files[PATH])
    assert store.active_version() == "v2"
    verify_installed(store.active_dir(), trusted)

    done = run_zeke(*args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == "v3"
    assert served.log[-1]["range"] == f"bytes={kept}-" and served.log[-1]["status"] == 206
    assert "downloading" in done.stderr  # the rich progress bar
    assert not store.downloads.exists()


def test_a_changed_file_on_the_server_restarts_the_download(store, trusted, server, tls):
    url, served = server
    dest = download_path(store, url)
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(b"stale bytes of an older bundle")
    meta = {"url": url, "etag": '"0123456789abcdef"', "last_modified": None, "total": 999}
    dest.with_name(dest.name + ".part.json").write_text(json.dumps(meta))
    result = install(url, store=store, trusted=trusted, cafile=tls[0])
    assert result.version == "v3"
    assert served.log[0]["if_range"] == '"0123456789abcdef"' and served.log[0]["status"] == 200


def test_untrusted_certificate_is_refused(store, trusted, server):
    url, _ = server
    before = snapshot(store.root)
    with pytest.raises(BundleError, match=r"TLS certificate of 127\.0\.0\.1 is not trusted"):
        install(url, store=store, trusted=trusted)
    assert snapshot(store.root) == before


def test_plain_http_and_missing_files_are_refused(store, trusted, server, tls):
    url, _ = server
    before = snapshot(store.root)
    with pytest.raises(BundleError, match="https:// only"):
        install(url.replace("https://", "http://"), store=store, trusted=trusted)
    with pytest.raises(BundleError, match="HTTP 404"):
        install(url + ".nope", store=store, trusted=trusted, cafile=tls[0])
    assert snapshot(store.root) == before


def test_a_corrupt_download_is_refused_and_discarded(store, trusted, server, tls):
    url, served = server
    data = bytearray(served.files[PATH])
    data[len(data) // 2] ^= 0x40
    served.files[PATH] = bytes(data)
    before = snapshot(store.root)
    with pytest.raises(BundleError, match="sha256"):
        install(url, store=store, trusted=trusted, cafile=tls[0])
    assert snapshot(store.root) == before
