"""The event socket against what may already sit at its path, a second pipeline, and EMFILE.

Whatever occupies the socket path (a user's file, a directory, a link, a FIFO, the config file
itself, a live socket of another process) is left exactly as it was and the pipeline refuses
with a named error; only a stale socket (nobody listening) is taken over. A pipeline that
runs out of file descriptors keeps serving once descriptors are free again, and says so once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import resource
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile import refused, tree_state, zeke
from zeke.errors import ZekeError
from zeke.events import EmotionEvent, EventServer, read_events

# -- what can sit at the socket path -------------------------------------------------------


@dataclass
class Occupant:
    """Something placed at the socket path before the pipeline starts."""

    name: str
    make: Callable[[Path], None]  # builds it at the given path
    taken: bool = False  # a stale socket: the pipeline may replace it
    live: bool = False  # a socket someone listens on: the error names them


_listeners: list[socket.socket] = []


def _regular(content: bytes, mode: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(content)
        path.chmod(mode)

    return make


def _directory(entries: dict[str, bytes], mode: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.mkdir()
        for rel, data in entries.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_bytes(data)
        path.chmod(mode)

    return make


def _symlink(target: Callable[[Path], str]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.symlink_to(target(path))

    return make


def _stale_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))  # closed without unlinking: what a killed pipeline leaves


def _live_socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(64)
    _listeners.append(sock)


def _full_socket(path: Path) -> None:
    """Listening, but its accept queue is full: a connect would wait."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(0)
    _listeners.append(sock)
    for _ in range(4):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        try:
            client.connect(str(path))
        except (BlockingIOError, OSError):
            client.close()
            break
        _listeners.append(client)


def _fifo(mode: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        os.mkfifo(path, mode)

    return make


def _hardlink(path: Path) -> None:
    other = path.parent / "original.txt"
    other.write_bytes(b"two names, one file\n")
    os.link(other, path)


def occupants() -> list[Occupant]:
    rng = random.Random(13)
    contents = {
        "empty": b"",
        "byte": b"x",
        "text": b"my notes\nkeep them\n",
        "toml": b'[events]\nsocket = "/tmp/x.sock"\n',
        "binary": bytes(rng.getrandbits(8) for _ in range(4096)),
        "big": os.urandom(256 * 1024),
    }
    found = [
        Occupant(f"file-{label}-{mode:o}", _regular(data, mode))
        for label, data in contents.items()
        for mode in (0o644, 0o600, 0o444, 0o000)
    ]
    found += [
        Occupant(f"dir-{label}-{mode:o}", _directory(entries, mode))
        for label, entries in {
            "empty": {},
            "one": {"keep.txt": b"keep"},
            "nested": {"a/b/c.txt": b"deep", "d.bin": os.urandom(64)},
        }.items()
        for mode in (0o755, 0o555, 0o700)
    ]

    def beside(name: str, make: Callable[[Path], None]) -> Callable[[Path], str]:
        def target(path: Path) -> str:
            make(path.parent / name)
            return str(path.parent / name)

        return target

    found += [
        Occupant("link-to-file", _symlink(beside("t.txt", _regular(b"target", 0o644)))),
        Occupant("link-to-dir", _symlink(beside("t.d", _directory({"k": b"k"}, 0o755)))),
        Occupant("link-dangling", _symlink(lambda p: str(p.parent / "nowhere"))),
        Occupant(
            "link-relative", _symlink(lambda p: (_regular(b"r", 0o644)(p.parent / "r")) or "r")
        ),
        Occupant("link-loop", _symlink(lambda p: p.name)),
        Occupant("link-to-devnull", _symlink(lambda p: "/dev/null")),
        Occupant("link-to-stale-socket", _symlink(beside("s.sock", _stale_socket))),
        Occupant("link-to-live-socket", _symlink(beside("l.sock", _live_socket))),
        Occupant("fifo-644", _fifo(0o644)),
        Occupant("fifo-600", _fifo(0o600)),
        Occupant("fifo-000", _fifo(0o000)),
        Occupant("hardlink", _hardlink),
        Occupant("stale-socket", _stale_socket, taken=True),
        Occupant("live-socket", _live_socket, live=True),
        Occupant("full-socket", _full_socket, live=True),
    ]
    return found


#: Names the socket may have (the path is shown in errors: markup must print as typed).
SOCKET_NAMES = ("events.sock", "e", "ev ents.sock", "x[/]y.sock", "[bold]b.sock", "ünï.sock")


def _close_listeners() -> None:
    while _listeners:
        _listeners.pop().close()


def _event(seq: int) -> EmotionEvent:
    return EmotionEvent(seq, "update", 1, "happy", 0.9, (0.0, 0.0, 10.0, 10.0), 1.0 + seq)


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except FileNotFoundError:
        return False


@dataclass
class Tally:
    """cases | clean errors | tracebacks (non-ZekeError) | hangs | data lost"""

    cases: int = 0
    clean: int = 0
    tracebacks: int = 0
    hangs: int = 0
    lost: int = 0
    failures: list[str] | None = None

    def fail(self, what: str) -> None:
        if self.failures is None:
            self.failures = []
        self.failures.append(what)

    def line(self, surface: str) -> str:
        return (
            f"{surface}: cases {self.cases} | clean {self.clean} | tracebacks {self.tracebacks}"
            f" | hangs {self.hangs} | data lost {self.lost}"
        )


def _start_with_deadline(server: EventServer, seconds: float = 10.0) -> BaseException | None:
    """Start ``server`` in a thread; a start that does not end in time counts as a hang."""
    import threading

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            server.start()
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError("start did not return")
    return outcome[0]


def test_whatever_sits_at_the_path_is_kept_and_refused_by_name(tmp_path: Path) -> None:
    """Every occupant under every name: refused with a named error, or (stale) taken over."""
    tally = Tally()
    for i, (occ, name) in enumerate((o, n) for o in occupants() for n in SOCKET_NAMES):
        case = tmp_path / f"c{i}"
        case.mkdir()
        path = case / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            occ.make(path)
            before = tree_state(case)
            tally.cases += 1
            server = EventServer(path)
            try:
                err = _start_with_deadline(server)
            except TimeoutError:
                tally.hangs += 1
                tally.fail(f"{occ.name}/{name}: hang")
                continue
            if occ.taken:
                if err is not None:
                    tally.fail(f"{occ.name}/{name}: a stale socket was not taken over: {err!r}")
                    tally.tracebacks += not isinstance(err, ZekeError)
                    continue
                _check_serves(server, tally, f"{occ.name}/{name}")
                server.close()
                after = tree_state(case)
                if _is_socket(path) or {k: v for k, v in before.items() if k != name} != after:
                    tally.lost += 1
                    tally.fail(f"{occ.name}/{name}: tree changed after taking a stale socket")
                else:
                    tally.clean += 1
                continue
            if err is None:
                server.close()
                tally.fail(f"{occ.name}/{name}: not refused")
            elif not isinstance(err, ZekeError):
                tally.tracebacks += 1
                tally.fail(f"{occ.name}/{name}: {err!r}")
            elif not _named(err, path, live=occ.live):
                tally.fail(f"{occ.name}/{name}: unclear error: {err.message!r} / {err.hint!r}")
            if tree_state(case) != before:
                tally.lost += 1
                tally.fail(f"{occ.name}/{name}: the occupant was changed or removed")
            elif isinstance(err, ZekeError) and _named(err, path, live=occ.live):
                tally.clean += 1
        finally:
            _close_listeners()
    print(tally.line("event socket occupants (in-process)"))
    assert not tally.failures, "\n".join(tally.failures[:40])
    assert tally.cases >= 250


def _named(err: ZekeError, path: Path, *, live: bool) -> bool:
    """One line naming the path (and, for a live socket, the process), plus a hint."""
    text = err.message
    ok = "\n" not in text and str(path) in text and bool(err.hint)
    if live:
        ok = ok and f"pid {os.getpid()}" in text
    return ok


def _check_serves(server: EventServer, tally: Tally, label: str) -> None:
    """A reader connecting now receives what is published (published until it arrives)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as reader:
        reader.settimeout(5)
        reader.connect(str(server.path))
        reader.settimeout(0.05)
        received = b""
        deadline = time.monotonic() + 10
        while b"\n" not in received and time.monotonic() < deadline:
            server.publish(_event(1))
            with contextlib.suppress(TimeoutError):
                received += reader.recv(65536)
        line = received.split(b"\n", 1)[0]
        if not line or EmotionEvent.from_json(line).seq != 1:
            tally.fail(f"{label}: the socket does not serve")


def test_paths_that_cannot_be_a_socket_are_named_errors(tmp_path: Path) -> None:
    """A parent that is a file, a NUL byte, a name too long for AF_UNIX: ZekeError, nothing lost."""
    (tmp_path / "afile").write_bytes(b"mine")
    deep = tmp_path / "d"
    deep.mkdir()
    cases = [
        tmp_path / "afile" / "events.sock",
        tmp_path / "afile" / "sub" / "events.sock",
        Path(str(tmp_path / "nul") + "\0x.sock"),
        tmp_path / ("n" * 120 + ".sock"),
        deep / ("a" * 300),
    ]
    before = tree_state(tmp_path)
    for path in cases:
        with pytest.raises(ZekeError) as caught:
            EventServer(path).start()
        assert caught.value.hint and "\n" not in caught.value.message
    assert tree_state(tmp_path) == before


def test_a_missing_parent_is_created(tmp_path: Path) -> None:
    path = tmp_path / "run" / "zeke" / "events.sock"
    with EventServer(path) as server:
        tally = Tally()
        _check_serves(server, tally, "missing parent")
        assert not tally.failures
    assert not path.exists()


def test_an_exiting_server_removes_only_its_own_socket(tmp_path: Path) -> None:
    path = tmp_path / "e.sock"
    first = EventServer(path).start()
    path.unlink()  # someone removed it, and a second server now serves the path
    second = EventServer(path).start()
    ino = path.lstat().st_ino
    first.close()
    assert _is_socket(path) and path.lstat().st_ino == ino
    tally = Tally()
    _check_serves(second, tally, "second")
    assert not tally.failures
    second.close()
    assert not path.exists()


def test_an_exiting_server_leaves_a_file_put_in_its_place(tmp_path: Path) -> None:
    path = tmp_path / "e.sock"
    server = EventServer(path).start()
    path.unlink()
    path.write_bytes(b"a user's file")
    server.close()
    assert path.read_bytes() == b"a user's file"


def _race(gate, server: EventServer, outcomes: list, i: int) -> None:  # type: ignore[no-untyped-def]
    gate.wait()
    try:
        server.start()
    except BaseException as err:
        outcomes[i] = err


def test_servers_racing_for_one_path_leave_exactly_one_serving(tmp_path: Path) -> None:
    """Many servers started at once on one path (stale or free): one wins, the rest refuse."""
    import threading

    for round_ in range(30):
        path = tmp_path / f"r{round_}.sock"
        if round_ % 2:
            _stale_socket(path)
        servers = [EventServer(path) for _ in range(6)]
        outcomes: list[BaseException | None] = [None] * len(servers)
        gate = threading.Barrier(len(servers))
        threads = [
            threading.Thread(target=_race, args=(gate, server, outcomes, i))
            for i, server in enumerate(servers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        won = [servers[i] for i, err in enumerate(outcomes) if err is None]
        lost = [err for err in outcomes if err is not None]
        assert len(won) == 1, outcomes
        assert all(isinstance(err, ZekeError) and f"pid {os.getpid()}" in str(err) for err in lost)
        tally = Tally()
        _check_serves(won[0], tally, f"round {round_}")
        assert not tally.failures
        for server in servers:
            server.close()  # the losers must not remove the winner's socket before it closes
        assert not path.exists()


# -- end to end: real `zeke watch` children --------------------------------------------------


def _watch(*args: str | os.PathLike[str], **kw):  # type: ignore[no-untyped-def]
    return zeke("watch", "--demo", "--no-pace", "--frames", "2", "--json", *args, **kw)


E2E_OCCUPANTS = (
    "file-empty-644", "file-text-644", "file-toml-444", "file-binary-600", "file-big-644",
    "file-text-0", "dir-empty-755", "dir-nested-755", "dir-one-555", "link-to-file",
    "link-to-dir", "link-dangling", "link-loop", "link-to-devnull", "link-to-stale-socket",
    "link-to-live-socket", "fifo-644", "hardlink", "live-socket", "full-socket",
)  # fmt: skip


def test_watch_refuses_an_occupied_path_and_keeps_it(tmp_path: Path) -> None:
    by_name = {o.name: o for o in occupants()}
    tally = Tally()
    for i, label in enumerate(E2E_OCCUPANTS):
        occ = by_name[label]
        case = tmp_path / f"w{i}"
        case.mkdir()
        path = case / SOCKET_NAMES[i % len(SOCKET_NAMES)]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            occ.make(path)
            before = tree_state(case)
            ended = _watch("--events-socket", path)
            tally.cases += 1
            tally.tracebacks += ended.traceback
            tally.hangs += ended.hung
            changed = tree_state(case) != before
            tally.lost += changed
            named = str(path) in ended.stderr and (not occ.live or str(os.getpid()) in ended.stderr)
            if refused(ended) and not changed and named:
                tally.clean += 1
            else:
                tally.fail(f"{label}: changed={changed} {ended.describe()}")
        finally:
            _close_listeners()
    print(tally.line("event socket occupants (zeke watch)"))
    assert not tally.failures, "\n".join(tally.failures)


def test_a_config_naming_itself_as_the_socket_is_kept(tmp_path: Path) -> None:
    tally = Tally()
    for i, extra in enumerate(("", "# my settings\n", '[device]\nname = "hall"\n')):
        cfg = tmp_path / f"zeke{i}.toml"
        cfg.write_text(f'{extra}[events]\nsocket = "{cfg}"\n')
        before = tree_state(tmp_path)
        ended = zeke("watch", "--demo", "--no-pace", "--frames", "2", "--json", "--config", cfg)
        tally.cases += 1
        tally.tracebacks += ended.traceback
        tally.hangs += ended.hung
        changed = tree_state(tmp_path) != before
        tally.lost += changed
        if refused(ended) and not changed and str(cfg) in ended.stderr:
            tally.clean += 1
        else:
            tally.fail(f"{cfg.name}: changed={changed} {ended.describe()}")
    print(tally.line("config file as the socket (zeke watch)"))
    assert not tally.failures, "\n".join(tally.failures)


@contextlib.contextmanager
def _pipeline(path: Path, *extra: str, nofile: int | None = None) -> Iterator[_Child]:
    """A real ``zeke watch --demo`` serving ``path`` until the block ends."""
    child = _Child.start(
        ["watch", "--demo", "--json", "--duration", "60", "--events-socket", str(path), *extra],
        nofile=nofile,
    )
    try:
        child.wait_for_socket(path)
        yield child
    finally:
        child.stop()


class _Child:
    def __init__(self, proc: subprocess.Popen, err: tempfile._TemporaryFileWrapper) -> None:  # type: ignore[type-arg]
        self.proc = proc
        self.err = err
        self.returncode: int | None = None

    @classmethod
    def start(cls, args: list[str], nofile: int | None = None) -> _Child:
        def limit() -> None:
            os.setsid()
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        err = tempfile.NamedTemporaryFile(prefix="zeke-watch-", suffix=".err")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "zeke", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=limit,
        )
        return cls(proc, err)

    @property
    def stderr(self) -> str:
        return Path(self.err.name).read_text(errors="replace")

    def wait_for_socket(self, path: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not _is_socket(path):
            assert self.proc.poll() is None, self.stderr
            assert time.monotonic() < deadline, "the pipeline never served its socket"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.returncode = self.proc.returncode


def _receives_event(path: Path, timeout: float = 15) -> bool:
    """A reader connecting now gets an event (retrying while nobody accepts yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            left = max(0.1, deadline - time.monotonic())
            return next(read_events(path, timeout=left), None) is not None
        except (ConnectionRefusedError, BlockingIOError):  # not served yet / accept queue full
            time.sleep(0.1)
        except OSError:
            return False
    return False


def test_a_second_pipeline_on_the_path_refuses_and_the_first_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "e.sock"
    with _pipeline(path) as first:
        ino = path.lstat().st_ino
        ended = _watch("--events-socket", path)
        assert refused(ended), ended.describe()
        assert f"pid {first.proc.pid}" in ended.stderr and "zeke watch" in ended.stderr, (
            ended.stderr
        )
        assert _is_socket(path) and path.lstat().st_ino == ino  # the second left it alone
        assert _receives_event(path), "the first pipeline no longer serves"
    assert first.returncode == 0, first.stderr
    assert not path.exists()


def test_pipelines_started_together_leave_one_serving(tmp_path: Path) -> None:
    path = tmp_path / "e.sock"
    children = [
        _Child.start(
            ["watch", "--demo", "--json", "--duration", "30", "--events-socket", str(path)]
        )
        for _ in range(4)
    ]
    try:
        deadline = time.monotonic() + 60
        while sum(c.proc.poll() is None for c in children) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        running = [c for c in children if c.proc.poll() is None]
        assert len(running) == 1, [c.stderr for c in children]
        for child in children:
            if child is not running[0]:
                assert child.proc.returncode not in (0, None), child.stderr
                assert "Traceback" not in child.stderr and "error:" in child.stderr, child.stderr
                assert f"pid {running[0].proc.pid}" in child.stderr, child.stderr
        assert _receives_event(path)
        running[0].stop()
        assert running[0].returncode == 0, running[0].stderr
        assert not path.exists()
    finally:
        for child in children:
            child.stop()


def test_a_live_socket_of_another_program_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "other.sock"
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.bind(sys.argv[1]); s.listen(8); print('up', flush=True)\n"
        "while True:\n"
        "    c, _ = s.accept()\n"
        "    try:\n        c.sendall(b'mine\\n')\n    except OSError:\n        pass\n"
        "    c.close()\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "up\n"
        ino = path.lstat().st_ino
        comm = Path(f"/proc/{other.pid}/comm").read_text().strip()
        ended = _watch("--events-socket", path)
        assert refused(ended), ended.describe()
        assert f"pid {other.pid}" in ended.stderr and comm in ended.stderr, ended.stderr
        assert path.lstat().st_ino == ino
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(path))
            assert client.makefile("rb").readline() == b"mine\n"
    finally:
        other.kill()
        other.wait()


def test_a_stale_socket_from_a_killed_pipeline_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "e.sock"
    killed = _Child.start(["watch", "--demo", "--json", "--events-socket", str(path)])
    killed.wait_for_socket(path)
    os.killpg(killed.proc.pid, signal.SIGKILL)
    killed.proc.wait()
    assert _is_socket(path)  # left behind
    with _pipeline(path) as second:
        assert _receives_event(path)
    assert second.returncode == 0, second.stderr
    assert not path.exists()


def test_an_exiting_pipeline_leaves_the_socket_that_replaced_its_own(tmp_path: Path) -> None:
    path = tmp_path / "e.sock"
    with _pipeline(path) as first:
        path.unlink()  # a stray clean-up removed it; a second pipeline now serves the path
        with _pipeline(path) as second:
            ino = path.lstat().st_ino
            first.stop()
            assert first.returncode == 0, first.stderr
            assert _is_socket(path) and path.lstat().st_ino == ino
            assert _receives_event(path)
        assert second.returncode == 0, second.stderr


# -- running out of file descriptors -------------------------------------------------------

NOFILE = 24


def _exhaust(path: Path, count: int, hold_s: float) -> int:
    """Open up to ``count`` connections (more than the pipeline may accept), hold, close them."""
    clients = []
    deadline = time.monotonic() + 3.0
    try:
        while len(clients) < count and time.monotonic() < deadline:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(0.2)
            try:
                client.connect(str(path))
            except OSError:  # the accept queue is full: the pipeline is out of descriptors
                client.close()
                time.sleep(0.01)
                continue
            clients.append(client)
        time.sleep(hold_s)
        return len(clients)
    finally:
        for client in clients:
            client.close()


def _descriptor_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "out of file descriptors" in line]


def _said(child: _Child, text: str, times: int) -> bool:
    return child.stderr.count(text) == times


def _wait_for(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_event_socket_survives_running_out_of_descriptors(tmp_path: Path) -> None:
    """Two episodes of EMFILE: each said once, recovered from, counted; no traceback."""
    path = tmp_path / "e.sock"
    with _pipeline(path, "--summary", nofile=NOFILE) as child:
        assert _receives_event(path)
        for episode, hold_s in ((1, 3.0), (2, 6.0)):
            assert _exhaust(path, 4 * NOFILE, hold_s=hold_s) > NOFILE - 8
            assert child.proc.poll() is None, child.stderr
            assert _receives_event(path), f"no events once descriptors were free: {child.stderr}"
            assert len(_descriptor_lines(child.stderr)) == episode, child.stderr  # said once
            recovered = functools.partial(_said, child, "accepting readers again", episode)
            assert _wait_for(recovered), child.stderr
        assert len(child.stderr.splitlines()) <= 4, child.stderr  # no line per failed accept
    assert child.returncode == 0, child.stderr
    assert "Traceback" not in child.stderr, child.stderr
    summary = json.loads(child.stderr.strip().splitlines()[-1])
    assert summary["event_socket"]["out_of_descriptors"] == 2, summary
    assert summary["event_socket"]["accept_failures"] >= 2, summary
