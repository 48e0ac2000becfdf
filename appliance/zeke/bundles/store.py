"""The bundle store: versioned directories, the ``current`` symlink and ``state.json``.

Layout under the store root (``/var/lib/zeke/models``, or ``$ZEKE_MODEL_STORE``)::

    versions/<version>/   one unpacked, verified, self-tested bundle each
    current -> versions/<version>   the active bundle, swapped by one atomic rename
    state.json            active, previous, installed bundles, failures, rollbacks, probation
    .lock                 held by whoever changes the store
    downloads/            partial and finished downloads (resumable)

The ``current`` link is the truth about what is active; ``state.json`` is its journal. A
switch first records its intent (``pending``), then swaps the link, then commits the state;
``reconcile`` finishes or forgets a switch that a crash interrupted, and removes the leftovers
of interrupted installs (staging directories, temporary links, unrecorded versions).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zeke.bundles.errors import BundleError, StoreBusy
from zeke.bundles.manifest import MANIFEST_MEMBER, MODELS_MANIFEST, parse_manifest
from zeke.fsutil import atomic_symlink, atomic_write, fsync_dir

DEFAULT_STORE = Path("/var/lib/zeke/models")
STORE_ENV = "ZEKE_MODEL_STORE"
DEFAULT_KEEP = 3
STAGING_PREFIX = ".staging-"
HISTORY_LIMIT = 50

Hook = Callable[[str], None]


def _no_hook(step: str) -> None:
    return None


def store_root(explicit: str | os.PathLike | None = None) -> Path:
    """The store root: explicit, ``$ZEKE_MODEL_STORE``, /var/lib/zeke/models."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


class BundleRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str
    name: str
    identity: str  # sha256 of the signed manifest
    key_id: str
    installed_at: float
    activated_at: float | None = None
    status: Literal["ready", "rolled-back"] = "ready"
    size_bytes: int = 0


class FailureRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str
    kind: Literal["self-test", "crash"]
    reason: str
    at: float


class RollbackRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    from_version: str | None
    to_version: str
    reason: str
    automatic: bool
    at: float


class Probation(BaseModel):
    """A freshly switched-to bundle: crashes of the pipeline now count against it."""

    model_config = ConfigDict(extra="ignore")

    version: str
    since: float
    crashes: int = 0


class PendingSwitch(BaseModel):
    """A switch that was decided and may or may not have reached the ``current`` link."""

    model_config = ConfigDict(extra="ignore")

    op: Literal["install", "rollback"]
    target: str
    previous: str | None
    from_version: str | None
    reason: str = ""
    automatic: bool = False


class StoreState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal[1] = 1
    active: str | None = None
    previous: str | None = None
    bundles: dict[str, BundleRecord] = Field(default_factory=dict)
    failed: list[FailureRecord] = Field(default_factory=list)
    rollbacks: list[RollbackRecord] = Field(default_factory=list)
    probation: Probation | None = None
    pending: PendingSwitch | None = None

    def record_failure(self, version: str, kind: str, reason: str, at: float) -> None:
        self.failed.append(FailureRecord(version=version, kind=kind, reason=reason, at=at))
        del self.failed[:-HISTORY_LIMIT]

    def commit(self, pending: PendingSwitch, now: float) -> None:
        """Apply a switch whose link swap has happened (also used to finish one after a crash)."""
        record = self.bundles.get(pending.target)
        if record is not None:
            record.activated_at = now
            record.status = "ready"
        self.active = pending.target
        self.previous = pending.previous
        if pending.op == "install":
            self.probation = Probation(version=pending.target, since=now)
        else:
            self.probation = None
            old = self.bundles.get(pending.from_version or "")
            if old is not None:
                old.status = "rolled-back"
            self.rollbacks.append(
                RollbackRecord(
                    from_version=pending.from_version,
                    to_version=pending.target,
                    reason=pending.reason,
                    automatic=pending.automatic,
                    at=now,
                )
            )
            del self.rollbacks[:-HISTORY_LIMIT]
            if pending.automatic and pending.from_version:
                self.record_failure(pending.from_version, "crash", pending.reason, now)
        self.pending = None


class Store:
    """One store root and the operations on its layout."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = store_root(root)
        self.versions = self.root / "versions"
        self.current = self.root / "current"
        self.state_path = self.root / "state.json"
        self.lock_path = self.root / ".lock"
        self.downloads = self.root / "downloads"

    # -- reading (no lock needed) ------------------------------------------------------------

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def active_version(self) -> str | None:
        """The version ``current`` points at (one readlink: cheap enough to poll)."""
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        head, _, version = target.rpartition("/")
        if head != "versions" or not version:
            return None
        return version

    def active_dir(self) -> Path | None:
        version = self.active_version()
        if version is None:
            return None
        directory = self.version_dir(version)
        return directory if (directory / MODELS_MANIFEST).is_file() else None

    def read_state(self) -> StoreState:
        """The recorded state; rebuilt from the directories if state.json is missing or bad."""
        try:
            return StoreState.model_validate_json(self.state_path.read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ValidationError, ValueError):
            pass
        return self._rebuild_state()

    def _rebuild_state(self) -> StoreState:
        state = StoreState(active=self.active_version())
        if not self.versions.is_dir():
            return state
        for directory in sorted(self.versions.iterdir()):
            try:
                data = (directory / MANIFEST_MEMBER).read_bytes()
                manifest = parse_manifest(data)
            except (OSError, BundleError):
                continue
            state.bundles[directory.name] = BundleRecord(
                version=directory.name,
                name=manifest.name,
                identity=hashlib.sha256(data).hexdigest(),
                key_id="",
                installed_at=directory.stat().st_mtime,
                size_bytes=manifest.payload_bytes,
            )
        return state

    # -- changing (hold the lock) ------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[None]:
        """Hold the store's lock; ``wait`` seconds at most for another holder to finish."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise BundleError(
                f"cannot write the model store {self.root}: {err.strerror}",
                hint=f"run as root, or point ${STORE_ENV} at a writable directory",
            ) from None
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as err:
                    if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise StoreBusy(
                            f"the model store {self.root} is busy: another zeke process is "
                            "installing or rolling back",
                            hint="wait for it to finish, then try again",
                        ) from None
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)

    def write_state(self, state: StoreState) -> None:
        text = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        atomic_write(self.state_path, text.encode("utf-8"))

    def reconcile(self) -> StoreState:
        """Finish or forget an interrupted switch and remove install leftovers (under lock)."""
        self.versions.mkdir(parents=True, exist_ok=True)
        state = self.read_state()
        before = state.model_dump()
        for entry in self.root.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(".") and ".tmp-" in entry.name:
                entry.unlink(missing_ok=True)
        link = self.active_version()
        if state.pending is not None:
            if link == state.pending.target and state.active != link:
                state.commit(state.pending, time.time())
            state.pending = None
        if state.active != link:
            state.active = link
        for directory in self.versions.iterdir():
            if directory.name not in state.bundles and directory.name != link:
                shutil.rmtree(directory, ignore_errors=True)
        for version in list(state.bundles):
            if not self.version_dir(version).is_dir():
                del state.bundles[version]
        if state.previous is not None and state.previous not in state.bundles:
            state.previous = None
        if state.probation is not None and state.probation.version != state.active:
            state.probation = None
        if state.model_dump() != before or not self.state_path.exists():
            self.write_state(state)
        fsync_dir(self.versions)
        return state

    def switch(self, state: StoreState, pending: PendingSwitch, hook: Hook = _no_hook) -> None:
        """Record the intent, swap ``current`` atomically, commit the state."""
        state.pending = pending
        self.write_state(state)
        hook("pending")
        atomic_symlink(
            f"versions/{pending.target}", self.current, before_replace=lambda: hook("link")
        )
        hook("switch")
        state.commit(pending, time.time())
        self.write_state(state)
        hook("state")

    def gc(self, state: StoreState, keep: int = DEFAULT_KEEP, hook: Hook = _no_hook) -> list[str]:
        """Remove all but the ``keep`` most recent bundles; never the active or previous one."""
        keep = max(keep, 2)
        newest_first = sorted(
            state.bundles.values(),
            key=lambda r: (r.activated_at or r.installed_at, r.installed_at),
            reverse=True,
        )
        keepers = {state.active, state.previous} | {r.version for r in newest_first[:keep]}
        victims = [r.version for r in newest_first if r.version not in keepers]
        if not victims:
            return []
        for version in victims:
            del state.bundles[version]
        self.write_state(state)
        hook("gc")
        for version in victims:
            shutil.rmtree(self.version_dir(version), ignore_errors=True)
        fsync_dir(self.versions)
        return victims


def active_models_dir(root: str | os.PathLike | None = None) -> Path | None:
    """The active bundle's models directory (its versioned path, pinned), or None."""
    return Store(root).active_dir()


def describe_state(state: StoreState) -> str | None:
    """One line for ``zeke doctor`` and the UI when the last switch was an automatic rollback."""
    if not state.rollbacks:
        return None
    last = state.rollbacks[-1]
    if not last.automatic or state.active != last.to_version:
        return None
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.at))
    return (
        f"models rolled back automatically from {last.from_version} to {last.to_version} "
        f"at {when}: {last.reason}"
    )
