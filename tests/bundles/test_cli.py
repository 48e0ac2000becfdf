"""``zeke models``: the --json contracts and the error exits."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from zeke.cli.main import app

from .conftest import run_zeke

runner = CliRunner()

LIST_KEYS = {"store", "active", "previous", "bundles", "probation", "notice", "failed", "rollbacks"}
BUNDLE_KEYS = {
    "version", "name", "active", "previous", "status", "verified", "problem", "key_id",
    "installed_at", "activated_at", "disk_bytes", "models",
}  # fmt: skip


def invoke(*args: str) -> dict:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_help_lists_the_commands():
    result = runner.invoke(app, ["models", "--help"])
    assert result.exit_code == 0
    for command in (
        "list",
        "verify",
        "install",
        "rollback",
        "keygen",
        "pack",
        "supervise",
        "watchdog",
    ):
        assert command in result.stdout


def test_list_json_on_an_empty_store(env):
    listing = invoke("models", "list", "--json")
    assert set(listing) == LIST_KEYS
    assert listing["active"] is None and listing["bundles"] == []
    assert listing["store"] == env["ZEKE_MODEL_STORE"]


def test_list_json_contract(store):
    listing = invoke("models", "list", "--json")
    assert set(listing) == LIST_KEYS
    assert (listing["active"], listing["previous"]) == ("v2", "v1")
    assert [b["version"] for b in listing["bundles"]] == ["v2", "v1"]  # newest first
    for bundle in listing["bundles"]:
        assert set(bundle) == BUNDLE_KEYS
        assert bundle["verified"] is True and bundle["problem"] is None
        assert bundle["models"] == ["blazeface_short", "emotion_int8"]
        assert bundle["disk_bytes"] > 300_000
    assert listing["probation"]["version"] == "v2"
    assert listing["notice"] is None


def test_list_shows_a_damaged_bundle_as_unverified(store):
    (store.version_dir("v1") / "stray.txt").write_text("x")
    listing = invoke("models", "list", "--json")
    v1 = next(b for b in listing["bundles"] if b["version"] == "v1")
    assert v1["verified"] is False and "extra file" in v1["problem"]


def test_verify_install_rollback_pack_json_contracts(store, make_bundle, tmp_path, keypair):
    bundle = make_bundle("v3")
    checked = invoke("models", "verify", str(bundle), "--json")
    assert set(checked) == {
        "ok", "path", "name", "version", "key_id", "min_zeke_version", "files",
        "payload_bytes", "models",
    }  # fmt: skip
    assert checked["ok"] is True and checked["version"] == "v3"

    installed = invoke("models", "install", str(bundle), "--json")
    assert set(installed) == {
        "version", "name", "key_id", "previous", "activated", "bundle_bytes", "disk_bytes",
        "removed", "timings_s", "selftest",
    }  # fmt: skip
    assert {"verify", "unpack", "selftest", "switch", "total"} <= set(installed["timings_s"])
    assert installed["selftest"]["checks"] == installed["selftest"]["passed"] == 2

    record = invoke("models", "rollback", "--json")
    assert set(record) == {"from_version", "to_version", "reason", "automatic", "at"}
    assert (record["from_version"], record["to_version"]) == ("v3", "v2")

    source = tmp_path / "src"
    source.mkdir()
    for name in ("manifest.toml", "blazeface_short.tflite", "emotion_int8.tflite"):
        (source / name).write_bytes((store.version_dir("v1") / name).read_bytes())
    packed = invoke(
        "models", "pack", str(source), "--key", str(keypair.private_path), "--out",
        str(tmp_path / "p.bundle"), "--json",
    )  # fmt: skip
    assert set(packed) == {"path", "name", "version", "key_id", "bytes", "sha256", "files"}
    assert len(packed["version"]) == 12  # derived from the content
    assert packed["files"] == ["blazeface_short.tflite", "emotion_int8.tflite", "manifest.toml"]


def test_errors_exit_4_with_one_line(env, tmp_path):
    done = run_zeke("models", "verify", env=env)
    assert done.returncode == 4
    assert done.stderr.startswith("error: no bundle is active")
    done = run_zeke("models", "rollback", env=env)
    assert done.returncode == 4 and "no bundles are installed" in done.stderr
    done = run_zeke("models", "install", str(tmp_path / "missing.bundle"), env=env)
    assert done.returncode == 4 and "does not exist" in done.stderr
    for args in (("keygen", "--out", str(tmp_path)),) * 2:
        done = run_zeke("models", *args, env=env)
    assert done.returncode == 4 and "refusing to overwrite" in done.stderr
    done = run_zeke(
        "models", "pack", str(tmp_path), "--key", str(tmp_path / "zeke-models.key"), env=env
    )
    assert done.returncode == 4 and "no manifest.toml" in done.stderr
    assert all("Traceback" not in s for s in (done.stderr,))
