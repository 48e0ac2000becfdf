"""Hostile config files and concurrent writers: every refusal is one clean line, nothing lost.

Hundreds of generated files (``hostile_cases``) go through the loader in-process, in a forked
child each so that a hang or an unbounded read is caught rather than suffered; a sample goes
through the real ``zeke config`` command. The writer is tested with real parallel processes,
links, read-only files and the leftovers of a write that was killed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.hostile_cases import Case, all_cases, in_fork
from tests.hostile import refused, zeke
from tests.hostile import tree_fingerprint as tree_state
from zeke.config import load_config, read_config, set_value

CASES = all_cases()
BY_ID = {case.id: case for case in CASES}
LOCK = ".zeke.toml.lock"


def test_there_are_hundreds_of_cases():
    assert len(CASES) >= 300
    assert len(BY_ID) == len(CASES), "case ids must be unique"


def _built(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    folder = tmp_path / "case"
    folder.mkdir()
    return folder, case.build(folder)


def _assert_clean(outcome, what: str) -> None:
    assert outcome.kind == "clean", f"{what}: {outcome.kind}: {outcome.message[:300]}"
    assert "\n" not in outcome.message, f"{what}: more than one line"
    assert len(outcome.message) <= 1200, f"{what}: {len(outcome.message)} characters echoed"
    assert outcome.hint, f"{what}: no hint"
    assert outcome.seconds < 10, f"{what}: took {outcome.seconds:.1f} s"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_loader_refuses_cleanly(tmp_path, case):
    folder, path = _built(tmp_path, case)
    before = tree_state(folder)
    outcome = in_fork(lambda: load_config(path))
    if case.expect == "accept":
        assert outcome.kind == "ok", outcome.message
    else:
        _assert_clean(outcome, case.id)
    assert tree_state(folder) == before


#: A writer is never pointed at a system file (a broken one would replace /dev/null): the
#: ``node-*`` cases give it the same devices, made inside the case's directory.
SET_CASES = [
    c
    for c in CASES
    if c.expect == "refuse" and not c.system and c.id not in ("missing", "dangling-link")
]


@pytest.mark.parametrize("case", SET_CASES, ids=[c.id for c in SET_CASES])
def test_set_refuses_a_broken_file_and_changes_nothing(tmp_path, case):
    folder, path = _built(tmp_path, case)
    before = tree_state(folder)
    outcome = in_fork(lambda: set_value(path, "camera.width", "800"))
    _assert_clean(outcome, case.id)
    assert tree_state(folder) == before


# -- end to end through `python -m zeke` ---------------------------------------------------

E2E = [
    "fifo", "link-to-fifo", "dev-zero", "node-zero", "dev-urandom", "link-to-node-null",
    "proc-self-mem",
    "proc-kcore-like", "socket", "directory", "symlink-loop", "name-over-name-max",
    "path-over-path-max", "sparse-1tb", "million-keys", "ten-mb-value", "just-over-limit",
    "deep-array-2000", "deep-inline-table-10000", "deep-mixed-2000", "deep-dotted-key-20000",
    "int-4301-digits", "float-100k-digits", "many-unknown-keys", "long-string-value",
    "utf-16-le-bom", "raw-nul", "binary-noise", "camera.width-0", "camera.width-1",
    "camera.fps-2", "mesh.baud-0", "mesh.backoff_max_s-2", "mqtt.host-0", "mqtt.topic_prefix-0",
    "events.socket-0", "camera.loop-2", "camera.uri-0", "camera.uri-1", "camera.uri-6",
    "camera.uri-11",
]  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "ZEKE_CONFIG": ""}


@pytest.mark.parametrize("number", range(len(E2E)), ids=E2E)
def test_zeke_config_refuses_cleanly(tmp_path, number):
    case = BY_ID[E2E[number]]
    folder, path = _built(tmp_path, case)
    before = tree_state(folder)
    env = _env(tmp_path)
    way = number % 4
    if way == 3 and case.system:
        way = 0  # a writer is never pointed at a system file
    if way == 0:
        ended = zeke("config", "validate", path, env=env, memory_limit_mb=1024)
    elif way == 1:
        ended = zeke("config", "validate", "--config", path, "--json", env=env)
        assert ended.stdout and json.loads(ended.stdout)["valid"] is False
    elif way == 2:
        ended = zeke("config", "show", "--json", env={**env, "ZEKE_CONFIG": str(path)})
    else:
        ended = zeke("config", "set", "--config", path, "camera.width", "800", env=env)
    assert refused(ended), ended.describe()
    assert ended.returncode == 5, ended.describe()
    assert len(ended.stderr) < 2000 and ended.seconds < 15, ended.describe()
    assert tree_state(folder) == before


BAD_CAMERAS = [
    "rtsp://u:p@127.0.0.1:99999/x", "rtsp://[::1", "rtsp://" + "h" * 300 + "/x",
    "~nosuchuser/x.mp4", "/tmp/" + "n" * 300 + ".mp4", "csi://" + "9" * 5000,
    "v4l2:///dev/video0?fps=nan",
]  # fmt: skip


@pytest.mark.parametrize("uri", BAD_CAMERAS, ids=[u[:24] for u in BAD_CAMERAS])
def test_watch_refuses_a_bad_camera_uri(tmp_path, uri):
    ended = zeke("watch", "--camera", uri, "--no-events-socket", env=_env(tmp_path), deadline=60)
    assert refused(ended), ended.describe()
    assert ended.returncode == 2, ended.describe()
    assert "hunter" not in ended.stderr and ":p@" not in ended.stderr


def test_show_json_is_strict_json(tmp_path):
    path = tmp_path / "zeke.toml"
    path.write_text("[mesh]\nbackoff_max_s = 3600\n[camera]\nfps = 240\n")
    ended = zeke("config", "show", "--json", "--config", path, env=_env(tmp_path))
    assert ended.returncode == 0, ended.describe()

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    doc = json.loads(ended.stdout, parse_constant=no_constants)
    assert doc["config"]["mesh"]["backoff_max_s"] == 3600.0


# -- the writer ------------------------------------------------------------------------------

PARALLEL = {
    "device.name": ("door-{n}", "door-{n}"),
    "camera.width": ("{w}", None),
    "camera.fps": ("{n}.5", None),
    "vision.threads": ("{n}", None),
    "vision.detector": ("full", "full"),
    "mesh.queue_size": ("{q}", None),
    "mqtt.port": ("{p}", None),
    "mqtt.host": ("broker-{n}.lan", "broker-{n}.lan"),
}


@pytest.mark.parametrize("round_", [1, 2])
def test_parallel_sets_all_survive(tmp_path, round_):
    path = tmp_path / "zeke.toml"
    path.write_text("# my notes\n[vision]\nmin_score = 0.6\n")
    values = {
        key: raw.format(n=round_ + 3, w=800 + round_, q=500 + round_, p=1800 + round_)
        for key, (raw, _) in PARALLEL.items()
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "zeke", "config", "set", "--config", str(path), key, value],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, value in values.items()
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    config = read_config(path)
    for key, value in values.items():
        section, name = key.split(".")
        got = getattr(getattr(config, section), name)
        assert str(got) == value or got == type(got)(value), (key, got, value)
    assert config.vision.min_score == 0.6
    assert path.read_text().startswith("# my notes\n")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [LOCK, "zeke.toml", "zeke.toml.bak"], names


def test_a_symlinked_config_is_updated_through_the_link(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "zeke.toml"
    real.write_text("[vision]\nthreads = 2\n")
    link = tmp_path / "zeke.toml"
    link.symlink_to("real/zeke.toml")
    chain = tmp_path / "chain.toml"
    chain.symlink_to("zeke.toml")
    ended = zeke("config", "set", "--config", chain, "camera.width", "800", env=_env(tmp_path))
    assert ended.returncode == 0, ended.describe()
    set_value(link, "vision.threads", "3")
    assert link.is_symlink() and os.readlink(link) == "real/zeke.toml"
    assert chain.is_symlink() and os.readlink(chain) == "zeke.toml"
    assert read_config(real).camera.width == 800 and read_config(real).vision.threads == 3
    assert (real_dir / "zeke.toml.bak").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.toml", "real", "zeke.toml"]


def test_a_dangling_link_writes_its_target(tmp_path):
    (tmp_path / "etc").mkdir()
    link = tmp_path / "zeke.toml"
    link.symlink_to("etc/zeke.toml")
    set_value(link, "device.name", "kiosk-1")
    assert link.is_symlink() and read_config(tmp_path / "etc" / "zeke.toml").device.name == (
        "kiosk-1"
    )


@pytest.mark.parametrize("target", ["loop", "/dev/null", "fifo", "directory"])
def test_a_link_to_something_else_is_refused(tmp_path, target):
    link = tmp_path / "zeke.toml"
    if target == "loop":
        link.symlink_to("zeke.toml")
    elif target == "fifo":
        os.mkfifo(tmp_path / "pipe")
        link.symlink_to("pipe")
    elif target == "directory":
        (tmp_path / "d").mkdir()
        link.symlink_to("d")
    else:
        link.symlink_to(target)
    before = tree_state(tmp_path)
    ended = zeke("config", "set", "--config", link, "camera.width", "800", env=_env(tmp_path))
    assert refused(ended) and ended.returncode == 5, ended.describe()
    assert tree_state(tmp_path) == before


def test_a_read_only_config_is_refused(tmp_path):
    path = tmp_path / "zeke.toml"
    path.write_text("[vision]\nthreads = 2\n")
    path.chmod(0o444)
    link = tmp_path / "link.toml"
    link.symlink_to("zeke.toml")
    before = tree_state(tmp_path)
    for target in (path, link):
        ended = zeke("config", "set", "--config", target, "vision.threads", "3", env=_env(tmp_path))
        assert refused(ended) and ended.returncode == 5, ended.describe()
        assert "read-only" in ended.stderr and "chmod" in ended.stderr, ended.describe()
    assert tree_state(tmp_path) == before
    assert (path.stat().st_mode & 0o777) == 0o444


def _stale(folder: Path) -> tuple[list[str], list[str]]:
    """Temp files a killed zeke leaves (removed on the next write) and look-alikes (kept)."""
    own = [".zeke.toml.zeke-4242-0123abcd.tmp", ".zeke.toml.bak.zeke-17-deadbeef.tmp",
           ".zeke.toml.k3x_9qaz.tmp"]  # fmt: skip
    others = [".zeke.toml.mine", "zeke.toml.tmp", ".zeke.toml.zeke-4242-0123abcd.tmp.keep",
              ".other.toml.zeke-1-00000000.tmp", ".zeke.toml.notes-v2.tmp"]  # fmt: skip
    for name in own + others:
        (folder / name).write_text("half a file")
    os.symlink("/etc/hostname", folder / ".zeke.toml.zeke-1-0000beef.tmp")
    others.append(".zeke.toml.zeke-1-0000beef.tmp")  # a link is never one of ours
    return own, others


def test_stale_temp_files_are_cleaned_on_the_next_write(tmp_path):
    path = tmp_path / "zeke.toml"
    path.write_text("[vision]\nthreads = 2\n")
    own, others = _stale(tmp_path)
    ended = zeke("config", "set", "--config", path, "vision.threads", "3", env=_env(tmp_path))
    assert ended.returncode == 0, ended.describe()
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(own), names
    assert set(others) <= names
    kept = [tmp_path / n for n in others]
    assert all(p.read_text() == "half a file" for p in kept if not p.is_symlink())
    assert os.readlink(tmp_path / ".zeke.toml.zeke-1-0000beef.tmp") == "/etc/hostname"


def test_a_killed_write_leaves_the_old_file_and_the_next_write_cleans_up(tmp_path):
    """A child dies (os._exit) just before its rename: the old file stays, the temp is swept."""
    path = tmp_path / "zeke.toml"
    path.write_text("[vision]\nthreads = 2\n")
    code = (
        "import os, sys\n"
        "from zeke import config\n"
        "os.replace = lambda *a: os._exit(9)\n"
        f"config.set_value({str(path)!r}, 'vision.threads', '5')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    assert read_config(path).vision.threads == 2
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert left, "the killed write should have left its temp file"
    ended = zeke("config", "set", "--config", path, "vision.threads", "4", env=_env(tmp_path))
    assert ended.returncode == 0, ended.describe()
    assert read_config(path).vision.threads == 4
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("key", "raw", "written"),
    [
        ("camera.width", "800", "width = 800"),
        ("camera.loop", "no", "loop = false"),
        ("camera.pace", "TRUE", "pace = true"),
        ("camera.fps", "12.5", "fps = 12.5"),
        ("mesh.interfaces", "eth0,192.168.1.2", 'interfaces = ["eth0", "192.168.1.2"]'),
        ("mqtt.host", "broker.lan", 'host = "broker.lan"'),
    ],
)
def test_set_writes_typed_values(tmp_path, key, raw, written):
    path = tmp_path / "zeke.toml"
    set_value(path, key, raw)
    assert written in path.read_text()
    read_config(path)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("camera.width", "800.0"), ("camera.width", "1_000"), ("camera.width", "9" * 5000),
        ("camera.loop", "2"), ("camera.fps", "inf"), ("camera.fps", "nan"),
        ("mesh.baud", "1e20"), ("mesh.baud", "-1"), ("mqtt.port", "true"),
        ("mqtt.topic_prefix", "zeke/#"), ("mqtt.host", ""), ("mqtt.host", " "),
        ("events.socket", "/run/" + "s" * 300), ("camera.uri", "rtsp://[::1"),
        ("device.name", "d" * 100_000),
    ],
)  # fmt: skip
def test_set_refuses_a_bad_value_cleanly(tmp_path, key, raw):
    path = tmp_path / "zeke.toml"
    path.write_text("[vision]\nthreads = 2\n")
    before = tree_state(tmp_path)
    outcome = in_fork(lambda: set_value(path, key, raw))
    if (key, raw) == ("mqtt.host", ""):
        assert outcome.kind == "ok"  # an empty value resets the key to its default
        return
    _assert_clean(outcome, f"{key}={raw[:20]}")
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("where", ["~nosuchuser/zeke.toml", "/" + "n" * 300 + "/zeke.toml"])
def test_unusable_config_locations(tmp_path, where):
    for args, env in (
        (("config", "show", "--config", where), _env(tmp_path)),
        (("config", "path"), {**_env(tmp_path), "ZEKE_CONFIG": where}),
        (("config", "set", "--config", where, "camera.width", "800"), _env(tmp_path)),
    ):
        ended = zeke(*args, env=env)
        assert refused(ended), ended.describe()


@pytest.mark.parametrize(
    "options",
    [
        ("--mqtt-host", "mqtt://broker"), ("--mqtt-host", "a b"), ("--mqtt-port", "0"),
        ("--mqtt-host", "x", "--mqtt-prefix", "zeke/#"),
    ],
)  # fmt: skip
def test_mesh_run_refuses_bad_mqtt_options(tmp_path, options):
    env = {**_env(tmp_path), "ZEKE_STATE_DIR": str(tmp_path / "state")}
    ended = zeke("mesh", "run", *options, env=env)
    assert refused(ended) and ended.returncode == 2, ended.describe()


def test_a_hard_linked_config_is_refused(tmp_path):
    """A rename would split the names (one keeps the old text), so say so instead."""
    path = tmp_path / "zeke.toml"
    path.write_text("[vision]\nthreads = 2\n")
    os.link(path, tmp_path / "other.toml")
    before = tree_state(tmp_path)
    ended = zeke("config", "set", "--config", path, "vision.threads", "3", env=_env(tmp_path))
    assert refused(ended) and "hard links" in ended.stderr, ended.describe()
    assert tree_state(tmp_path) == before
