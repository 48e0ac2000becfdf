"""``zeke config`` as a user runs it: path, show, get, set, validate; JSON contracts; errors."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def cfg_env(tmp_path):
    """Point zeke at a config file in tmp_path (not yet existing)."""
    return {"ZEKE_CONFIG": str(tmp_path / "zeke.toml"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def test_path_json_contract(zeke_cli, cfg_env, tmp_path):
    proc = zeke_cli("config", "path", "--json", env=cfg_env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc == {
        "path": str(tmp_path / "zeke.toml"),
        "origin": "ZEKE_CONFIG",
        "exists": False,
        "write_path": str(tmp_path / "zeke.toml"),
        "searched": [str(tmp_path / "zeke.toml")],
    }


def test_path_without_any_file(zeke_cli, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    proc = zeke_cli("config", "path", "--json", env={**env, "ZEKE_CONFIG": ""})
    doc = json.loads(proc.stdout)
    user = str(tmp_path / "xdg" / "zeke" / "zeke.toml")
    assert doc["searched"][0] == user and doc["searched"][1] == "/etc/zeke/zeke.toml"
    if not os.path.exists("/etc/zeke/zeke.toml"):
        assert doc["origin"] == "defaults" and doc["path"] is None


def test_set_get_show_validate(zeke_cli, cfg_env, tmp_path):
    proc = zeke_cli("config", "set", "vision.detector", "full", env=cfg_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"vision.detector = full  ({tmp_path / 'zeke.toml'})"
    assert zeke_cli("config", "set", "camera.fps", "12.5", env=cfg_env).returncode == 0
    get = zeke_cli("config", "get", "camera.fps", "--json", env=cfg_env)
    assert json.loads(get.stdout) == {"key": "camera.fps", "value": 12.5}
    assert zeke_cli("config", "get", "vision.detector", env=cfg_env).stdout == "full\n"

    show = zeke_cli("config", "show", "--json", env=cfg_env)
    doc = json.loads(show.stdout)
    assert doc["path"] == str(tmp_path / "zeke.toml") and doc["origin"] == "ZEKE_CONFIG"
    assert set(doc["config"]) == {"device", "camera", "vision", "events", "watch", "mesh", "mqtt"}
    assert doc["config"]["vision"]["detector"] == "full"
    assert doc["config"]["camera"]["fps"] == 12.5
    assert doc["config"]["vision"]["threads"] == 1  # defaults are filled in

    text = zeke_cli("config", "show", env=cfg_env).stdout
    assert text.startswith(f"# in effect: {tmp_path / 'zeke.toml'}\n")
    assert 'detector = "full"' in text and "[watch]" in text

    valid = zeke_cli("config", "validate", "--json", env=cfg_env)
    assert json.loads(valid.stdout) == {
        "path": str(tmp_path / "zeke.toml"), "valid": True, "error": None
    }  # fmt: skip
    assert zeke_cli("config", "validate", env=cfg_env).stdout.startswith("ok: ")


def test_bad_set_is_refused_and_the_file_kept(zeke_cli, cfg_env, tmp_path):
    zeke_cli("config", "set", "vision.threads", "2", env=cfg_env)
    before = (tmp_path / "zeke.toml").read_bytes()
    proc = zeke_cli("config", "set", "vision.thread", "4", env=cfg_env)
    assert proc.returncode == 5
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: unknown key 'thread' in [vision] (did you mean 'threads'?)"
    assert lines[1].startswith("hint: keys of [vision]: detector, backend, threads")
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "zeke.toml").read_bytes() == before


def test_validate_reports_file_key_and_allowed(zeke_cli, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[vision]\ndetector = "huge"\n')
    proc = zeke_cli("config", "validate", str(path))
    assert proc.returncode == 5
    assert proc.stderr.splitlines()[0] == (
        f"error: {path}: [vision] detector: must be 'short', 'full' or 'ssd', got 'huge'"
    )
    as_json = zeke_cli("config", "validate", str(path), "--json")
    assert as_json.returncode == 5
    doc = json.loads(as_json.stdout)
    assert doc["valid"] is False and doc["path"] == str(path) and "got 'huge'" in doc["error"]


def test_missing_explicit_file(zeke_cli, tmp_path):
    proc = zeke_cli("config", "show", "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 5
    assert f"{tmp_path / 'nope.toml'}: no such config file" in proc.stderr
