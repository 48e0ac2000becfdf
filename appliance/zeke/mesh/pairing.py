"""Where the appliance keeps one key per paired gateway: a small JSON file, mode 0600.

Writes are atomic (temp file, fsync, rename) and serialised with a lock file, because
``zeke mesh pair`` and the running ``zeke mesh run`` (which reserves sequence numbers here)
may write at the same time. A file that others can read is refused: it holds secrets.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from zeke.errors import ConfigError
from zeke.fsutil import atomic_write
from zeke.inputs import read_regular

FORMAT_VERSION = 1


def default_state_dir() -> Path:
    """``$ZEKE_STATE_DIR``, ``/var/lib/zeke`` as root, else the XDG state directory."""
    env = os.environ.get("ZEKE_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/zeke")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "zeke"


#: ``zeke-mesh.service``'s ``StateDirectory=``: where root's ``zeke mesh pair`` writes, so the
#: service (its own user) reads the same pairings.
MESH_SERVICE_STATE = Path("/var/lib/zeke-mesh")


def default_pairing_file() -> Path:
    """``$ZEKE_STATE_DIR``, the unit's state directory, the service's as root, else per user."""
    if os.environ.get("ZEKE_STATE_DIR"):
        return default_state_dir() / "mesh" / "pairings.json"
    systemd_state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd_state:
        return Path(systemd_state) / "pairings.json"
    if os.geteuid() == 0:
        return MESH_SERVICE_STATE / "pairings.json"
    return default_state_dir() / "mesh" / "pairings.json"


#: The running ``zeke mesh run`` of the service writes its counters here (tmpfs: it is
#: rewritten twice a second, which an SD card should not see); ``zeke doctor`` reads it.
MESH_STATUS = Path("/run/zeke-mesh/status.json")


def default_status_file() -> Path:
    """``$ZEKE_MESH_STATUS``, else the service's status file."""
    return Path(os.environ.get("ZEKE_MESH_STATUS") or MESH_STATUS)


def _directory_owner(directory: Path) -> tuple[int, int] | None:
    """As root, a file written into a service's directory belongs to that service's user."""
    if os.geteuid() != 0:
        return None
    info = directory.stat()
    return (info.st_uid, info.st_gid) if info.st_uid != 0 else None


#: A pairings file is a few hundred bytes per gateway; anything this big is not one.
MAX_PAIRINGS_BYTES = 1 << 20


@dataclass
class Pairing:
    """A paired gateway: its advertised name and id, the shared key, the next free sequence."""

    name: str
    gateway_id: str
    key: bytes
    paired_at: float
    next_seq: int = 1

    def to_doc(self) -> dict[str, object]:
        doc = asdict(self)
        doc["key"] = self.key.hex()
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, object]) -> Pairing:
        return cls(
            name=str(doc["name"]),
            gateway_id=str(doc["gateway_id"]),
            key=bytes.fromhex(str(doc["key"])),
            paired_at=float(doc["paired_at"]),  # type: ignore[arg-type]
            next_seq=int(doc.get("next_seq", 1)),  # type: ignore[call-overload]
        )


def write_private(path: Path, data: bytes) -> None:
    """Atomically and durably replace ``path`` with ``data``; the file is 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, data, mode=0o600, owner=_directory_owner(path.parent))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers never see half a file (status files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check_private(path: Path) -> None:
    """Refuse a secrets file that group or others can read."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} is readable by other users and holds gateway keys",
            hint=f"run: chmod 600 {path}",
        )


class PairingStore:
    """The pairings file: load, get, put, remove, and reserve sequence numbers."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else default_pairing_file()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if owner := _directory_owner(self.path.parent):
                os.fchown(fd, *owner)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self) -> dict[str, Pairing]:
        if not self.path.exists():
            return {}
        check_private(self.path)
        raw = read_regular(
            self.path, "pairings file", max_bytes=MAX_PAIRINGS_BYTES, error=ConfigError,
            hint="fix or delete it and pair the gateways again with `zeke mesh pair NAME`",
        )  # fmt: skip
        try:
            doc = json.loads(raw.decode("utf-8"))
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported format version {doc.get('version')!r}")
            return {name: Pairing.from_doc(entry) for name, entry in doc["gateways"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            raise ConfigError(
                f"cannot read the pairings file {self.path}: {str(err)[:200]}",
                hint="fix or delete it and pair the gateways again with `zeke mesh pair NAME`",
            ) from err

    def _save(self, pairings: dict[str, Pairing]) -> None:
        doc = {
            "version": FORMAT_VERSION,
            "gateways": {name: p.to_doc() for name, p in sorted(pairings.items())},
        }
        write_private(self.path, (json.dumps(doc, indent=2) + "\n").encode())

    def update(self, change: Callable[[dict[str, Pairing]], object]) -> object:
        """Read, change and write back under the lock; returns what ``change`` returns."""
        with self._locked():
            pairings = self.load()
            result = change(pairings)
            self._save(pairings)
            return result

    def get(self, name: str) -> Pairing | None:
        return self.load().get(name)

    def put(self, pairing: Pairing) -> None:
        self.update(lambda pairings: pairings.__setitem__(pairing.name, pairing))

    def remove(self, name: str) -> bool:
        return bool(self.update(lambda pairings: pairings.pop(name, None) is not None))

    def reserve(self, name: str, count: int, floor: int = 1) -> int:
        """Reserve ``count`` sequence numbers (all >= ``floor``) for ``name``; returns the first.

        Sequence numbers must grow across restarts (nodes drop what they have seen), so the
        forwarder reserves them in blocks here rather than writing on every event.
        """

        def change(pairings: dict[str, Pairing]) -> int:
            pairing = pairings.get(name)
            if pairing is None:
                raise ConfigError(f"gateway {name!r} is not paired", hint="zeke mesh pair NAME")
            first = max(pairing.next_seq, floor)
            pairing.next_seq = first + count
            return first

        return int(self.update(change))  # type: ignore[call-overload]

    def ensure(self, name: str, gateway_id: str, key_factory: Callable[[], bytes]) -> Pairing:
        """The pairing called ``name``, created with a new key if there is none (direct mode)."""

        def change(pairings: dict[str, Pairing]) -> Pairing:
            if name not in pairings:
                pairings[name] = Pairing(name, gateway_id, key_factory(), time.time())
            return pairings[name]

        return self.update(change)  # type: ignore[return-value]
