"""A clean config environment: no ZEKE_CONFIG, XDG in tmp, no real /etc/zeke consulted."""

from __future__ import annotations

import pytest


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The environment a command sees; the system file is tmp_path/etc/zeke/zeke.toml."""
    monkeypatch.delenv("ZEKE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    system = tmp_path / "etc" / "zeke" / "zeke.toml"
    monkeypatch.setattr("zeke.config.SYSTEM_CONFIG", system)
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "system": system}
