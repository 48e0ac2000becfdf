"""Pairing, the pairings file, the delivery queue, rogue gateways and direct serial mode."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import stat
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import LOOPBACK, Mesh, Proc, pair, read_json, unique, wait_until, zeke_cmd
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from zeke.errors import ConfigError
from zeke.mesh import protocol as p
from zeke.mesh.auth import format_key, new_nonce, parse_key
from zeke.mesh.nodesim import NodeSimulator
from zeke.mesh.pairing import Pairing, PairingStore
from zeke.mesh.queue import DeliveryQueue, SequenceAllocator


class RogueGateway:
    """Advertises `_zeke._tcp` on loopback and records every byte anyone sends it.

    With ``forge``, it answers an opening hello with a hello tagged by a key of its own.
    """

    def __init__(self, name: str, forge: bool = False):
        self.name = name
        self.forge = forge
        self.received = bytearray()
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        self.info = ServiceInfo(
            "_zeke._tcp.local.",
            f"{self.name}._zeke._tcp.local.",
            port=port,
            properties={
                "id": "f00df00df00d",
                "proto": str(p.PROTOCOL_VERSION),
                "fw": "9.9",
                "nodes": "5",
            },
            server="rogue.local.",
            addresses=[socket.inet_aton("127.0.0.1")],
        )
        await (await self.zc.async_register_service(self.info))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while data := await reader.read(4096):
            self.received += data
            if self.forge and b"HELLO app" in data:
                opening = p.parse(data.split(b"\n")[0]).message
                forged = p.Hello("gw", "f00df00df00d", "9.9", new_nonce(), opening.nonce, 0)
                writer.write(p.encode(forged, secrets.token_bytes(16)))
                await writer.drain()
        writer.close()

    def close(self) -> None:
        async def stop() -> None:
            await (await self.zc.async_unregister_service(self.info))
            await self.zc.async_close()
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_rogue_gateways_never_get_an_event(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh(unique("gw-test"))
    stranger = RogueGateway(unique("evil-gw"))
    try:
        mesh.source.emit(50, interval_s=0)
        assert mesh.sim.wait_for(lambda s: len(s.event_lines()) == 50, 60)
        assert stranger.connections == 0 and stranger.received == b""
    finally:
        stranger.close()
    # Now a rogue takes over the paired gateway's name: it gets a hello, never an event.
    mesh.gateway.stop()
    assert wait_until(lambda: mesh.link().get("state") != "connected", 30)
    impostor = RogueGateway(unique("gw-test"), forge=True)
    try:
        mesh.source.emit(50, interval_s=0)
        assert wait_until(lambda: mesh.link().get("auth_failures", 0) >= 1, 60), mesh.link()
        lines = [line for line in bytes(impostor.received).split(b"\n") if line]
        assert lines and all(line.startswith(p.encode_head("HELLO") + b"app ") for line in lines)
        assert b"EVT" not in impostor.received
    finally:
        impostor.close()
    assert len(mesh.sim.event_lines()) == 50


def test_pairing_checks_the_key_and_stores_it_privately(
    start_gateway, node_sim, mesh_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    gw = start_gateway(unique("pair-gw"), node_sim.path)
    pairing_file = tmp_path / "pairings.json"
    wrong = pair(gw, pairing_file, key=format_key(secrets.token_bytes(16)), check=False)
    assert wrong.returncode != 0
    assert "did not accept the key" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not pairing_file.exists()
    missing = subprocess.run(
        zeke_cmd(
            "mesh",
            "pair",
            "no-such-gw",
            "--key",
            gw.key(),
            "--timeout",
            "1",
            "--pairing-file",
            str(pairing_file),
            *LOOPBACK,
        ),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "no gateway named 'no-such-gw'" in missing.stderr
    assert "Traceback" not in missing.stderr
    good = pair(gw, pairing_file)
    doc = json.loads(good.stdout)
    assert doc["name"] == unique("pair-gw") and doc["id"] == gw.status()["id"]
    assert stat.S_IMODE(pairing_file.stat().st_mode) == 0o600
    stored = PairingStore(pairing_file).get(unique("pair-gw"))
    assert stored is not None and stored.key == parse_key(gw.key())
    assert not [f for f in pairing_file.parent.iterdir() if f.name.endswith(".tmp")]
    # A secrets file others can read is refused with the fix in the message.
    pairing_file.chmod(0o644)
    refused = subprocess.run(
        zeke_cmd("mesh", "run", "--pairing-file", str(pairing_file), *LOOPBACK),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 5 and "chmod 600" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_pairing_store_reserves_disjoint_sequence_blocks(tmp_path: Path) -> None:
    store = PairingStore(tmp_path / "p.json")
    store.put(Pairing("gw", "abc", bytes(16), 0.0))
    with ThreadPoolExecutor(8) as pool:
        firsts = list(pool.map(lambda _: store.reserve("gw", 100), range(40)))
    assert sorted(firsts) == list(range(1, 4001, 100))
    assert store.reserve("gw", 10, floor=10_000) == 10_000
    allocator = SequenceAllocator(lambda count, floor: store.reserve("gw", count, floor), block=4)
    seqs = [allocator.next() for _ in range(10)]
    assert seqs == sorted(set(seqs)) and seqs[0] == 10_010
    allocator.skip_past(20_000)
    assert allocator.next() == 20_001
    with pytest.raises(ConfigError):
        store.reserve("unknown", 1)
    (tmp_path / "bad.json").write_text("{nope")
    os.chmod(tmp_path / "bad.json", 0o600)
    with pytest.raises(ConfigError, match="cannot read the pairings file"):
        PairingStore(tmp_path / "bad.json").load()


def test_delivery_queue_bound_ack_and_resend() -> None:
    q = DeliveryQueue(3)
    for seq in range(1, 6):
        q.push(seq, b"line%d" % seq)
    assert q.dropped_oldest == 2 and [s for s, _ in q.after(0)] == [3, 4, 5]
    assert q.ack(3) == 1 and [s for s, _ in q.after(0)] == [4, 5]
    assert [s for s, _ in q.after(4)] == [5]
    with pytest.raises(ValueError):
        q.push(5, b"again")


def test_direct_serial_mode_needs_no_network(event_source, mesh_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with NodeSimulator(key=None, node_id="desk") as sim:
        pairing_file = tmp_path / "pairings.json"
        run = Proc(
            zeke_cmd(
                "mesh",
                "run",
                "--serial",
                sim.path,
                "--events-socket",
                str(event_source.path),
                "--pairing-file",
                str(pairing_file),
                "--status-file",
                str(tmp_path / "direct.json"),
                "-v",
            ),
            mesh_env,
            tmp_path,
            "direct",
        ).start()
        try:
            event_source.wait_for_reader()
            assert wait_until(
                lambda: (
                    read_json(tmp_path / "direct.json")
                    .get("gateways", {})
                    .get("direct", {})
                    .get("state")
                    == "connected"
                ),
                60,
            ), run.stderr()
            published = event_source.emit(40, interval_s=0)
            assert sim.wait_for(lambda s: len(s.event_lines()) == 40, 60), run.stderr()
            key = PairingStore(pairing_file).get("direct").key  # type: ignore[union-attr]
            assert sim.keys_received == 1 and sim.state.key == key
            got = [p.check(line, key, p.APP).message for line in sim.event_lines()]
            assert [(e.track, e.emotion) for e in got] == [
                (e.track_id, e.emotion) for e in published
            ]
            sim.press("reset")
            assert wait_until(lambda: '"command":"reset"' in run.stdout(), 30)
        finally:
            assert run.stop() == 0


def test_bad_serial_port_and_nothing_to_do_are_clean_errors(mesh_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "no-such-tty"
    gateway = subprocess.run(
        zeke_cmd(
            "gateway",
            "--serial",
            str(missing),
            "--name",
            unique("err-gw"),
            *LOOPBACK,
            "--state-dir",
            str(tmp_path / "gw"),
        ),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gateway.returncode == 3
    assert f"cannot open serial port {missing}" in gateway.stderr
    assert "Traceback" not in gateway.stderr
    idle = subprocess.run(
        zeke_cmd("mesh", "run", "--pairing-file", str(tmp_path / "none.json"), *LOOPBACK),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert idle.returncode == 2 and "no paired gateways" in idle.stderr
    assert "Traceback" not in idle.stderr


def test_the_service_and_root_agree_on_where_pairings_live(monkeypatch, tmp_path: Path) -> None:
    from zeke.mesh.pairing import MESH_SERVICE_STATE, default_pairing_file

    monkeypatch.delenv("ZEKE_STATE_DIR", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "svc"))
    assert default_pairing_file() == tmp_path / "svc" / "pairings.json"
    monkeypatch.delenv("STATE_DIRECTORY")
    if os.geteuid() == 0:
        assert default_pairing_file() == MESH_SERVICE_STATE / "pairings.json"
    monkeypatch.setenv("ZEKE_STATE_DIR", str(tmp_path / "state"))
    assert default_pairing_file() == tmp_path / "state" / "mesh" / "pairings.json"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand files to another user")
def test_root_pairing_into_the_service_directory_leaves_it_readable_by_the_service(
    tmp_path: Path,
) -> None:
    service_dir = tmp_path / "zeke-mesh"
    service_dir.mkdir(mode=0o700)
    os.chown(service_dir, 65534, 65534)
    store = PairingStore(service_dir / "pairings.json")
    store.put(Pairing("gw", "id-1", secrets.token_bytes(32), 1.0))
    info = (service_dir / "pairings.json").stat()
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (service_dir / "pairings.json.lock").stat().st_uid == 65534


def test_the_service_waits_for_a_pairing_and_then_forwards(  # type: ignore[no-untyped-def]
    start_gateway, event_source, mesh_env, tmp_path: Path
) -> None:
    """``zeke mesh run --wait`` (the unit's command) starts with no pairing and picks one up."""
    with NodeSimulator(key=None, node_id="ring-1") as sim:
        gateway = start_gateway(unique("gw-later"), sim.path)
        pairing_file = tmp_path / "pairings.json"
        status_file = tmp_path / "run.json"
        run = Proc(
            zeke_cmd(
                "mesh", "run", "--wait", "--events-socket", str(event_source.path),
                "--pairing-file", str(pairing_file), *LOOPBACK,
                "--status-file", str(status_file), "-v",
            ),
            mesh_env, tmp_path, "mesh-run-wait",
        ).start()  # fmt: skip
        try:
            event_source.wait_for_reader()
            assert run.alive(), run.stderr()
            assert "waiting for `zeke mesh pair NAME`" in run.stderr()
            pair(gateway, pairing_file, gateway.key())
            assert wait_until(
                lambda: (
                    read_json(status_file)
                    .get("gateways", {})
                    .get(unique("gw-later"), {})
                    .get("state")
                    == "connected"
                ),
                60,
            ), run.stderr()
            event_source.emit(10, interval_s=0)
            assert sim.wait_for(lambda s: len(s.shown) == 10, 60), run.stderr()
        finally:
            run.stop()
