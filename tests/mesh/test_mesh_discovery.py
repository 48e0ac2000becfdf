"""mDNS on loopback: `zeke mesh list` finds gateways; leaving ones disappear (goodbye, TTL)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time

from conftest import LOOPBACK, unique, wait_until, zeke_cmd

from zeke import __version__
from zeke.mesh.discovery import GatewayWatcher
from zeke.mesh.nodesim import NodeSimulator


class BackgroundWatcher:
    """A GatewayWatcher on loopback in its own event loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.watcher = GatewayWatcher(["127.0.0.1"])
        asyncio.run_coroutine_threadsafe(self.watcher.start(), self.loop).result(30)

    def names(self) -> set[str]:
        return set(self.watcher.gateways)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.watcher.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_mesh_list_finds_a_gateway_within_3_seconds(start_gateway, node_sim, mesh_env) -> None:  # type: ignore[no-untyped-def]
    gw = start_gateway(unique("kitchen-gw"), node_sim.path)
    started = time.monotonic()
    result = subprocess.run(
        zeke_cmd("mesh", "list", "--timeout", "3", "--json", *LOOPBACK),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60  # 3 s of listening plus interpreter start-up
    doc = json.loads(result.stdout)
    (found,) = [g for g in doc["gateways"] if g["name"] == unique("kitchen-gw")]
    status = gw.status()
    assert found["txt"] == {"id": status["id"], "proto": "2", "fw": __version__, "nodes": "1"}
    assert found["id"] == status["id"] and found["nodes"] == 1 and found["proto"] == "2"
    assert found["addresses"] == ["127.0.0.1"] and found["port"] == status["port"]
    assert found["paired"] is False
    table = subprocess.run(
        zeke_cmd("mesh", "list", "--timeout", "3", *LOOPBACK),
        env={**mesh_env, "COLUMNS": "160"},  # room for the run's unique names
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        table.returncode == 0
        and unique("kitchen-gw") in table.stdout
        and status["id"] in table.stdout
    )


def test_gateways_that_leave_disappear(start_gateway, mesh_env) -> None:  # type: ignore[no-untyped-def]
    """A stopped gateway says goodbye (gone at once); a killed one expires with its TTL."""
    with NodeSimulator() as sim_a, NodeSimulator() as sim_b:
        polite = start_gateway(unique("polite-gw"), sim_a.path)
        crashed = start_gateway(unique("crashed-gw"), sim_b.path, ttl=3)
        watcher = BackgroundWatcher()
        try:
            assert wait_until(
                lambda: {unique("polite-gw"), unique("crashed-gw")} <= watcher.names(), 30
            )
            polite.stop()
            assert wait_until(lambda: unique("polite-gw") not in watcher.names(), 10)
            # While it runs, a 3 s TTL is refreshed by re-queries: it stays listed.
            # (On a loaded machine a refresh can come late: listed again soon is what counts.)
            time.sleep(8)
            assert wait_until(lambda: unique("crashed-gw") in watcher.names(), 30)
            crashed.kill()
            killed = time.monotonic()
            # TTL 3 s; zeroconf sweeps its cache every 10 s: generous bound, not a timing test.
            assert wait_until(lambda: unique("crashed-gw") not in watcher.names(), 60)
            expired_after = time.monotonic() - killed
        finally:
            watcher.close()
    assert expired_after > 1.0  # it was the TTL, not a goodbye, that removed it
    result = subprocess.run(
        zeke_cmd("mesh", "list", "--timeout", "2", "--json", *LOOPBACK),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = [g["name"] for g in json.loads(result.stdout)["gateways"]]
    assert unique("polite-gw") not in names and unique("crashed-gw") not in names


def test_an_empty_network_says_what_to_check(mesh_env) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        zeke_cmd("mesh", "list", "--timeout", "0.5", *LOOPBACK),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "0 found" in result.stdout
    assert "no gateway answered within 0.5 s" in result.stderr
    assert "zeke gateway --serial PORT" in " ".join(result.stderr.split())
