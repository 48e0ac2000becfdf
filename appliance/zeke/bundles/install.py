"""Install a bundle: verify, unpack beside the active one, self-test, switch, clean up.

Steps, in order (each a crash point, see ``crash_point``)::

    download   a chunk of an https:// bundle arrived (the partial file is kept for resume)
    verify     signature, hashes and layout checked; nothing written yet
    stage      the first file is unpacked into a staging directory
    staged     every file unpacked and fsynced
    selftest   the new models passed the self-test (run on the staging directory)
    place      the staging directory was renamed into versions/<version>
    pending    state.json records the switch about to happen
    link       the new symlink exists under a temporary name
    switch     ``current`` was renamed over: the new bundle is active
    state      state.json committed
    gc         old bundles were dropped from state.json, not yet from disk

A crash before ``switch`` leaves the old bundle active; from ``switch`` on the new one is active
(it was verified and self-tested before). The next store operation removes the leftovers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zeke.bundles.download import Progress, check_url, download, is_url
from zeke.bundles.errors import BundleError, SelfTestFailed, StoreBusy
from zeke.bundles.keys import TrustedKeys
from zeke.bundles.selftest import SelfTestReport, run_self_test
from zeke.bundles.store import (
    DEFAULT_KEEP,
    STAGING_PREFIX,
    BundleRecord,
    PendingSwitch,
    Store,
    StoreState,
)
from zeke.bundles.unpack import unpack
from zeke.bundles.verify import VerifiedBundle, open_bundle, verify_installed, verify_stream
from zeke.fsutil import fsync_dir, tree_size

CRASH_ENV = "ZEKE_BUNDLE_CRASH_AT"
INSTALL_STEPS = (
    "download",
    "verify",
    "stage",
    "staged",
    "selftest",
    "place",
    "pending",
    "link",
    "switch",
    "state",
    "gc",
)

SelfTest = Callable[[Path], SelfTestReport]


def crash_point(step: str) -> None:
    """Fault injection for the crash-safety tests: ``kill -9`` ourselves at a named step.

    Only when ``$ZEKE_BUNDLE_CRASH_AT`` names the step; otherwise a no-op.
    """
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class InstallResult:
    version: str
    name: str
    key_id: str
    previous: str | None
    activated: bool  # False: this bundle was already the active one
    bundle_bytes: int
    disk_bytes: int
    removed: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    selftest: SelfTestReport | None = None


def _record(bundle: VerifiedBundle, directory: Path) -> BundleRecord:
    return BundleRecord(
        version=bundle.manifest.version,
        name=bundle.manifest.name,
        identity=bundle.identity,
        key_id=bundle.key_id,
        installed_at=time.time(),
        size_bytes=tree_size(directory),
    )


def _stage(
    store: Store,
    state: StoreState,
    stream,
    bundle: VerifiedBundle,
    self_test: SelfTest,
    timings: dict[str, float],
) -> SelfTestReport:
    """Unpack into a staging directory, self-test it there, then move it into versions/."""
    version = bundle.manifest.version
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=store.root))
    try:
        staging.chmod(0o755)
        started = time.perf_counter()
        unpack(stream, bundle, staging, after_first_file=lambda: crash_point("stage"))
        fsync_dir(store.root)
        timings["unpack"] = time.perf_counter() - started
        crash_point("staged")
        started = time.perf_counter()
        try:
            report = self_test(staging)
        except SelfTestFailed as err:
            state.record_failure(version, "self-test", err.message, time.time())
            store.write_state(state)
            kept = state.active or "the factory models"
            raise SelfTestFailed(f"{err.message}; {kept} stays active", hint=err.hint) from None
        timings["selftest"] = time.perf_counter() - started
        crash_point("selftest")
        os.rename(staging, store.version_dir(version))
        fsync_dir(store.versions)
        fsync_dir(store.root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    crash_point("place")
    return report


def _install_verified(
    store: Store,
    stream,
    bundle: VerifiedBundle,
    trusted: TrustedKeys,
    keep: int,
    self_test: SelfTest,
    timings: dict[str, float],
) -> InstallResult:
    state = store.reconcile()
    manifest = bundle.manifest
    version = manifest.version
    directory = store.version_dir(version)
    existing = state.bundles.get(version)
    report: SelfTestReport | None = None
    if existing is not None and existing.identity != bundle.identity:
        raise BundleError(
            f"bundle version {version} is already installed with different content",
            hint="give the new bundle its own version (`zeke models pack --version ...`)",
        )
    if existing is not None and state.active == version:
        removed = store.gc(state, keep, hook=crash_point)  # finish an interrupted install
        return InstallResult(
            version, manifest.name, bundle.key_id, state.previous, False, bundle.size,
            existing.size_bytes, removed, timings_s=timings,
        )  # fmt: skip
    if existing is not None:
        verify_installed(directory, trusted)
        report = self_test(directory)
    else:
        report = _stage(store, state, stream, bundle, self_test, timings)
        state.bundles[version] = _record(bundle, directory)
    previous = state.active
    started = time.perf_counter()
    pending = PendingSwitch(op="install", target=version, previous=previous, from_version=previous)
    store.switch(state, pending, hook=crash_point)
    timings["switch"] = time.perf_counter() - started
    started = time.perf_counter()
    removed = store.gc(state, keep, hook=crash_point)
    timings["gc"] = time.perf_counter() - started
    return InstallResult(
        version=version,
        name=manifest.name,
        key_id=bundle.key_id,
        previous=previous,
        activated=True,
        bundle_bytes=bundle.size,
        disk_bytes=state.bundles[version].size_bytes,
        removed=removed,
        timings_s=timings,
        selftest=report,
    )


def _drop_if_empty(directory: Path) -> None:
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def download_path(store: Store, url: str) -> Path:
    return store.downloads / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.bundle"


def install(
    source: str | os.PathLike,
    *,
    store: Store | None = None,
    trusted: TrustedKeys | None = None,
    keep: int = DEFAULT_KEEP,
    cafile: str | os.PathLike | None = None,
    progress: Progress | None = None,
    self_test: SelfTest = run_self_test,
) -> InstallResult:
    """Install a bundle file or https:// URL and make it active; see the module docstring."""
    store = store or Store()
    trusted = trusted if trusted is not None else TrustedKeys.load()
    timings: dict[str, float] = {}
    overall = time.perf_counter()
    downloaded: Path | None = None
    if is_url(str(source)):
        url = check_url(str(source))
        with store.lock():
            started = time.perf_counter()
            try:
                downloaded = download(
                    url,
                    download_path(store, url),
                    cafile=cafile,
                    progress=progress,
                    after_chunk=lambda _n: crash_point("download"),
                )
            finally:
                _drop_if_empty(store.downloads)
            timings["download"] = time.perf_counter() - started
        path = downloaded
    else:
        path = Path(source)
    keep_download = False
    try:
        with open_bundle(path) as stream:
            started = time.perf_counter()
            bundle = verify_stream(stream, path, trusted)
            timings["verify"] = time.perf_counter() - started
            crash_point("verify")
            with store.lock():
                try:
                    result = _install_verified(
                        store, stream, bundle, trusted, keep, self_test, timings
                    )
                except OSError as err:
                    active = store.active_version() or "the factory models"
                    raise BundleError(
                        f"installing {bundle.manifest.version} failed: {err.strerror} "
                        f"({err.filename}); {active} is active",
                        hint="free disk space or fix the store's permissions, then install again",
                    ) from None
    except StoreBusy:
        keep_download = True  # no fault of the download: keep it for the next attempt
        raise
    finally:
        if downloaded is not None and not keep_download:
            downloaded.unlink(missing_ok=True)
            _drop_if_empty(store.downloads)
    timings["total"] = time.perf_counter() - overall
    return result
