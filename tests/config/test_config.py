"""The configuration: models, search order, round trips, every bad case, atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from zeke import config as cfg
from zeke.config import (
    ZekeConfig,
    atomic_write_text,
    load_config,
    locate,
    parse_config,
    read_config,
    save_config,
    set_value,
    to_toml,
)
from zeke.errors import ConfigError


def test_defaults():
    c = ZekeConfig()
    assert c.camera.uri == "auto" and (c.camera.width, c.camera.height) == (640, 480)
    assert (c.vision.detector, c.vision.backend, c.vision.threads) == ("short", "auto", 1)
    assert c.vision.min_score == 0.5 and c.vision.models_dir is None
    assert c.events.socket is None and c.watch.preview is False and c.watch.kiosk is False
    assert c.device.name  # the host name, made valid


def test_round_trip_through_toml(tmp_path):
    c = ZekeConfig.model_validate(
        {
            "device": {"name": "door-1"},
            "camera": {"uri": "rtsp://10.0.0.9/live", "fps": 12.5, "loop": False},
            "vision": {"detector": "full", "backend": "cpu", "threads": 3, "min_score": 0.7,
                       "models_dir": "/opt/models"},
            "events": {"socket": "/run/zeke/e.sock"},
            "watch": {"preview": True},
        }
    )  # fmt: skip
    path = save_config(c, tmp_path / "zeke.toml")
    again = read_config(path)
    assert again == c
    assert again.vision.models_dir == Path("/opt/models")
    text = path.read_text()
    assert text.startswith("# zeke configuration.")
    assert "# short (faces within ~2 m), full (up to ~5 m), ssd (Edge TPU face model)" in text
    assert parse_config(to_toml(c, comments=False)) == c


def test_empty_file_is_all_defaults():
    assert parse_config("") == ZekeConfig(device={"name": ZekeConfig().device.name})


# -- every bad config, with its message ---------------------------------------------------

BAD = [
    ('[vision]\nthreads = "many"\n',
     "zeke.toml: [vision] threads: must be a valid integer, got 'many'"),
    ("[camera]\nloop = 3.5\n", "zeke.toml: [camera] loop: must be a valid boolean"),
    ("vision = 3\n", "zeke.toml: [vision] must be a table"),
    ('[vision]\ndetektor = "full"\n',
     "zeke.toml: unknown key 'detektor' in [vision] (did you mean 'detector'?); allowed: "
     "detector, backend, threads, min_score, models_dir"),
    ("[visoin]\nthreads = 2\n",
     "zeke.toml: unknown section [visoin] (did you mean [vision]?); allowed: [device], "
     "[camera], [vision], [events], [watch]"),
    ('name = "door"\n', "zeke.toml: 'name' must be inside a section: [device] name = ..."),
    ("[vision]\nthreads = 0\n",
     "zeke.toml: [vision] threads: must be greater than or equal to 1, got 0"),
    ("[vision]\nmin_score = 1.5\n", "zeke.toml: [vision] min_score: must be less than 1, got 1.5"),
    ("[camera]\nwidth = 100000\n",
     "zeke.toml: [camera] width: must be less than or equal to 7680, got 100000"),
    ('[vision]\ndetector = "huge"\n',
     "zeke.toml: [vision] detector: must be 'short', 'full' or 'ssd', got 'huge'"),
    ('[vision]\nbackend = "gpu"\n',
     "zeke.toml: [vision] backend: must be 'auto', 'cpu' or 'edgetpu', got 'gpu'"),
    ('[camera]\nuri = "ftp://cam/x"\n',
     "zeke.toml: [camera] uri: unsupported camera URI scheme 'ftp://'"),
    ('[device]\nname = "front door"\n',
     "zeke.toml: [device] name: must be 1 to 63 letters, digits, '.', '_' or '-', starting "
     "with a letter or digit, got 'front door'"),
    ("[camera\nuri = 1\n",
     "zeke.toml: not valid TOML: Expected ']' at the end of a table declaration (at line 1, "
     "column 8)"),
    ('[vision]\ndetector = "short"\ndetector = "full"\n', "zeke.toml: not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_messages(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "zeke.toml")
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.exit_code == 5
    assert caught.value.hint


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_config('[vision]\nthreads = 0\ndetector = "x"\n[camera]\nfps = -1\n', "z.toml")
    message = caught.value.message
    assert "[vision] threads" in message and "[vision] detector" in message
    assert "[camera] fps" in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_config(tmp_path / "nope.toml")
    assert caught.value.message == f"{tmp_path / 'nope.toml'}: no such config file"
    assert "zeke setup" in caught.value.hint


def test_directory_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        read_config(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="not a text file"):
        read_config(binary)


def test_unreadable_file():
    """As a user who may not read it (a forked child drops root to 'nobody' for this)."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "secret.toml"
        path.write_text("[vision]\n")
        path.chmod(0o600)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                read_config(path)
                os.write(write_end, b"read it")
            except ConfigError as err:
                os.write(write_end, err.message.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            message = pipe.read()
        os.waitpid(pid, 0)
    assert message == f"{path}: no permission to read it"


# -- where the config comes from -----------------------------------------------------------


def test_search_order(tmp_path, env, monkeypatch):
    user = Path(env["XDG_CONFIG_HOME"]) / "zeke" / "zeke.toml"
    system = env["system"]
    assert load_config().location.origin == "defaults"
    save_config(ZekeConfig(device={"name": "from-etc"}), system)
    loaded = load_config()
    assert (loaded.location.origin, loaded.path, loaded.config.device.name) == (
        "system", system, "from-etc"
    )  # fmt: skip
    save_config(ZekeConfig(device={"name": "from-user"}), user)
    assert load_config().config.device.name == "from-user"
    explicit = save_config(ZekeConfig(device={"name": "from-env"}), tmp_path / "env.toml")
    monkeypatch.setenv("ZEKE_CONFIG", str(explicit))
    assert load_config().config.device.name == "from-env"
    option = save_config(ZekeConfig(device={"name": "from-option"}), tmp_path / "opt.toml")
    loaded = load_config(option)
    assert (loaded.config.device.name, loaded.location.origin) == ("from-option", "--config")


def test_an_explicit_file_must_exist(tmp_path, env, monkeypatch):
    monkeypatch.setenv("ZEKE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config()
    assert locate().write_path == tmp_path / "missing.toml"


def test_writes_go_to_the_file_in_use_else_by_user(env, monkeypatch):
    fresh = locate()
    expected = (
        env["system"] if os.geteuid() == 0 else Path(env["XDG_CONFIG_HOME"]) / "zeke/zeke.toml"
    )
    assert fresh.path is None and fresh.write_path == expected
    assert fresh.searched == [Path(env["XDG_CONFIG_HOME"]) / "zeke/zeke.toml", env["system"]]


# -- atomic writes -------------------------------------------------------------------------


def test_set_value_keeps_comments_and_a_backup(tmp_path):
    path = tmp_path / "zeke.toml"
    path.write_text('# my notes\n[vision]\ndetector = "full"  # far faces\n')
    updated = set_value(path, "vision.threads", "3")
    assert updated.vision.threads == 3 and updated.vision.detector == "full"
    text = path.read_text()
    assert "# my notes" in text and "# far faces" in text and "threads = 3" in text
    assert (tmp_path / "zeke.toml.bak").read_text().startswith("# my notes\n[vision]")
    set_value(path, "camera.loop", "no")
    assert read_config(path).camera.loop is False
    set_value(path, "vision.models_dir", "/opt/m")
    assert read_config(path).vision.models_dir == Path("/opt/m")
    set_value(path, "vision.models_dir", "")
    assert read_config(path).vision.models_dir is None
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".zeke.toml.lock", "zeke.toml", "zeke.toml.bak"]  # the lock stays


def test_set_value_creates_the_file(tmp_path):
    path = tmp_path / "new" / "zeke.toml"
    set_value(path, "device.name", "kiosk-7")
    assert read_config(path).device.name == "kiosk-7"
    assert not (path.parent / "zeke.toml.bak").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("vision.threads", "-1", "[vision] threads: must be greater than or equal to 1"),
        ("vision.detector", "huge", "[vision] detector: must be 'short', 'full' or 'ssd'"),
        ("camera.loop", "perhaps", "[camera] loop: must be a valid boolean"),
        (
            "vision.detektor",
            "full",
            "unknown key 'detektor' in [vision] (did you mean 'detector'?)",
        ),
        ("visoin.threads", "2", "unknown section 'visoin' (did you mean 'vision'?)"),
        ("threads", "2", "config key 'threads' needs its section"),
    ],
)
def test_an_invalid_set_leaves_the_file_untouched(tmp_path, key, value, message):
    path = tmp_path / "zeke.toml"
    set_value(path, "vision.threads", "2")
    before = path.read_bytes()
    with pytest.raises(ConfigError) as caught:
        set_value(path, key, value)
    assert message in caught.value.message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".zeke.toml.lock", "zeke.toml"]


def test_refuses_to_edit_a_broken_file(tmp_path):
    path = tmp_path / "zeke.toml"
    path.write_text("[vision\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        set_value(path, "vision.threads", "2")
    assert path.read_text() == "[vision\n"


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch, fail_at):
    """A crash (here: an error) while writing leaves the old file whole and no temp files."""
    path = tmp_path / "zeke.toml"
    save_config(ZekeConfig(device={"name": "old"}), path)
    before = path.read_bytes()
    real_fsync, real_replace = os.fsync, os.replace

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    def failing_replace(src, dst):
        if Path(dst) == path:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    if fail_at == "fsync":
        monkeypatch.setattr(cfg.os, "fsync", failing_fsync)
    else:
        monkeypatch.setattr(cfg.os, "replace", failing_replace)
    with pytest.raises(ConfigError) as caught:
        save_config(ZekeConfig(device={"name": "new"}), path)
    monkeypatch.setattr(cfg.os, "fsync", real_fsync)
    assert "cannot write the config" in caught.value.message
    assert "the old file is unchanged" in caught.value.hint
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_keeps_mode_and_previous_file(tmp_path):
    path = tmp_path / "zeke.toml"
    path.write_text("[vision]\nthreads = 2\n")
    path.chmod(0o640)
    atomic_write_text(path, "[vision]\nthreads = 3\n")
    assert path.read_text() == "[vision]\nthreads = 3\n"
    assert (path.stat().st_mode & 0o777) == 0o640
    assert (tmp_path / "zeke.toml.bak").read_text() == "[vision]\nthreads = 2\n"


def test_an_unwritable_place_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as caught:
        atomic_write_text(blocker / "zeke.toml", "x = 1\n")
    assert str(blocker / "zeke.toml") in caught.value.message
