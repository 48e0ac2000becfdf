"""A real `zeke gateway` under attack on loopback: reflection, replay, displacement, downgrade,
trickle, connection floods, descriptor exhaustion and hundreds of fuzzed connections.

Attackers connect from their own loopback addresses (127.0.0.2 and up), the way hosts on a LAN
would, so the per-address cap can be told apart from the total one.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from conftest import LOOPBACK, Mesh, Proc, read_json, unique, wait_until, zeke_cmd
from mesh_fuzz import fuzz_lines

from zeke.mesh import protocol as p
from zeke.mesh.auth import new_nonce, parse_key
from zeke.mesh.nodesim import NodeSimulator

HOST = "127.0.0.1"


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(port: int, source: str = HOST) -> Conn:
    return await asyncio.wait_for(asyncio.open_connection(HOST, port, local_addr=(source, 0)), 10)


async def read_line(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes | None:
    """The next line, or None at EOF or when nothing comes in time."""
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (asyncio.TimeoutError, ConnectionError):
        return None
    return line or None


async def closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    """True if the gateway hangs up (EOF) within ``within`` seconds; data is read and dropped."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(reader.read(4096), deadline - time.monotonic())
        except asyncio.TimeoutError:
            return False
        except ConnectionError:
            return True
        if not data:
            return True
    return False


def opening(nonce: str, app_id: str = "cam") -> bytes:
    return p.encode(p.Hello("app", app_id, "1.0", nonce, None, 0))


async def handshake(port: int, key: bytes, source: str = HOST) -> tuple[bytes, bytes, str]:
    """A keyed appliance's handshake; returns (the gateway's answer, our proof, our nonce)."""
    reader, writer = await connect(port, source)
    nonce = new_nonce()
    writer.write(opening(nonce))
    answer = await read_line(reader)
    assert answer is not None, "the gateway did not answer a proper opening hello"
    parsed = p.check(answer.rstrip(b"\n"), key, p.gateway_to(nonce))
    msg = parsed.message
    assert isinstance(msg, p.Hello) and msg.role == "gw" and msg.peer_nonce == nonce
    proof = p.encode(p.Hello("app", "cam", "1.0", nonce, msg.nonce, msg.last), key)
    writer.write(proof)
    event = p.encode(p.Event(10**9, "enter", 1, "happy", 900, 1), key)
    writer.write(event)
    ack = await read_line(reader, 10)
    writer.close()
    assert ack is not None and isinstance(
        p.check(ack.rstrip(b"\n"), key, p.gateway_to(nonce)).message, p.Ack
    ), "a proven session gets its events acknowledged"
    return answer, proof, nonce


def wait_for_paired_session(mesh: Mesh) -> int:
    """Wait until the forwarder's session shows in the gateway's status; returns its port."""
    assert wait_until(lambda: mesh.gateway.status().get("connected") is True, 60)
    return mesh.gateway.status()["port"]


@pytest.fixture
def lone_gateway(start_gateway, node_sim: NodeSimulator):  # type: ignore[no-untyped-def]
    """A gateway with its MCU and no appliance: (gateway, key, port)."""
    gw = start_gateway(unique("hostile-gw"), node_sim.path)
    key = parse_key(gw.key())
    assert wait_until(lambda: gw.status().get("port"), 30)
    return gw, key, gw.status()["port"]


def test_reflection_attack_fails_and_the_paired_session_stays(start_mesh) -> None:  # type: ignore[no-untyped-def]
    """Issue 13's attack: no key, two connections, the gateway's answer replayed as a proof."""
    mesh: Mesh = start_mesh()
    port = wait_for_paired_session(mesh)
    sessions = mesh.gateway.status()["sessions"]
    failures = mesh.gateway.status()["auth_failures"]

    async def attack() -> dict[str, bool]:
        # A: open, receive the challenge Ng.
        reader_a, writer_a = await connect(port, "127.0.0.2")
        writer_a.write(opening(new_nonce()))
        answer_a = await read_line(reader_a)
        assert answer_a is not None
        challenge = p.parse(answer_a.rstrip(b"\n")).message.nonce  # type: ignore[union-attr]
        # B: offer Ng as our own nonce, hoping for a gateway line tagged over it.
        reader_b, writer_b = await connect(port, "127.0.0.3")
        writer_b.write(opening(challenge))
        reflected = await read_line(reader_b, 3)
        # C: any other gateway answer, replayed on A as A's proof.
        reader_c, writer_c = await connect(port, "127.0.0.4")
        writer_c.write(opening(new_nonce()))
        answer_c = await read_line(reader_c)
        assert answer_c is not None
        writer_a.write(answer_c)
        writer_a.write(answer_a)  # and the gateway's own answer on A, too
        a_closed = await closed_by_peer(reader_a, 10)
        for w in (writer_a, writer_b, writer_c):
            w.close()
        return {"b_answered": reflected is not None, "a_closed": a_closed}

    result = asyncio.run(attack())
    assert result == {"b_answered": False, "a_closed": True}
    status = mesh.gateway.status()
    assert status["sessions"] == sessions, "no attacker session was ever established"
    assert wait_until(lambda: mesh.gateway.status()["auth_failures"] >= failures + 2, 20)
    # The paired appliance was never displaced and still delivers.
    assert mesh.link().get("state") == "connected"
    before = len(mesh.sim.event_lines())
    mesh.source.emit(10, interval_s=0)
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) == before + 10, 60)
    assert mesh.gateway.status()["sessions"] == sessions, mesh.gateway.proc.stderr()[-3000:]


def test_a_proof_from_an_earlier_session_is_worthless(lone_gateway) -> None:  # type: ignore[no-untyped-def]
    gw, key, port = lone_gateway

    async def replay() -> bool:
        _, proof, nonce = await handshake(port, key)
        reader, writer = await connect(port)
        writer.write(opening(nonce))  # the same opening nonce as the recorded session
        assert await read_line(reader) is not None
        writer.write(proof)  # the old proof, for the old challenge
        writer.write(p.encode(p.Event(2 * 10**9, "enter", 1, "sad", 1, 1), key))
        ack = await read_line(reader, 8)
        writer.close()
        return ack is None

    assert asyncio.run(replay()), "a replayed proof must not open a session"
    assert wait_until(lambda: gw.status()["auth_failures"] >= 1, 20)


def test_an_unproven_connection_displaces_nothing(start_mesh) -> None:  # type: ignore[no-untyped-def]
    mesh: Mesh = start_mesh()
    port = wait_for_paired_session(mesh)
    sessions = mesh.gateway.status()["sessions"]

    async def intrude() -> None:
        conns = []
        for i in range(3):
            reader, writer = await connect(port, f"127.0.0.{10 + i}")
            writer.write(opening(new_nonce()) + b"Z2 ACK 1 #0000000000000000\njunk\n")
            conns.append((reader, writer))
        await asyncio.sleep(1.0)
        for _, writer in conns:
            writer.close()

    asyncio.run(intrude())
    assert mesh.gateway.status()["sessions"] == sessions, mesh.gateway.proc.stderr()[-3000:]
    assert mesh.link().get("state") == "connected"
    before = len(mesh.sim.event_lines())
    mesh.source.emit(5, interval_s=0)
    assert mesh.sim.wait_for(lambda s: len(s.event_lines()) == before + 5, 60)


def test_a_version_1_client_gets_no_answer(lone_gateway) -> None:  # type: ignore[no-untyped-def]
    _, _, port = lone_gateway

    async def old_client() -> bytes | None:
        reader, writer = await connect(port)
        writer.write(f"Z1 HELLO app cam 0.1.0 {new_nonce()} - 0\n".encode())
        line = await read_line(reader, 7)
        writer.close()
        return line

    assert asyncio.run(old_client()) is None


def test_a_trickling_client_is_cut_at_one_deadline(lone_gateway) -> None:  # type: ignore[no-untyped-def]
    """`junk` every second kept a connection open for good when each read had its own timeout."""
    gw, _, port = lone_gateway

    async def trickle() -> bool:
        reader, writer = await connect(port, "127.0.0.20")
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            try:
                writer.write(b"junk\n")
                await writer.drain()
            except ConnectionError:
                return True
            if await closed_by_peer(reader, 1.0):
                return True
        writer.close()
        return False

    assert asyncio.run(trickle()), "the gateway kept a trickling client past 25 s"
    assert wait_until(lambda: gw.status()["auth_failures"] >= 1, 20)


def test_unauthenticated_connections_are_capped(lone_gateway) -> None:  # type: ignore[no-untyped-def]
    gw, key, port = lone_gateway

    async def flood() -> tuple[int, int]:
        one_peer = [await connect(port, "127.0.0.30") for _ in range(12)]
        many = [await connect(port, f"127.0.1.{i}") for i in range(1, 31)]
        closed_one = sum([await closed_by_peer(r, 1.0) for r, _ in one_peer])
        closed_many = sum([await closed_by_peer(r, 0.3) for r, _ in many])
        # While the flood holds its slots, a keyed appliance from its own address gets in
        # as soon as slots free up (the flood's connections time out after 5 s).
        for _, w in one_peer + many:
            w.close()
        await handshake(port, key, "127.0.0.31")
        return closed_one, closed_many

    closed_one, closed_many = asyncio.run(flood())
    assert closed_one >= 12 - 4, "one address keeps at most 4 connections in the handshake"
    assert closed_many >= 30 - 16 + 4, "at most 16 in the handshake in total"
    # 8 over the per-address cap, then at least 30 - (16 - 4) over the total one.
    assert wait_until(lambda: gw.status()["refused_connections"] >= 8 + 18, 20), gw.status()


def test_descriptor_exhaustion_is_said_once_and_the_gateway_recovers(
    node_sim: NodeSimulator, mesh_env: dict[str, str], tmp_path: Path
) -> None:
    name = unique("fd-gw")
    state = tmp_path / "fd.state"
    status_file = tmp_path / "fd.status.json"
    args = zeke_cmd(
        "gateway", "--serial", node_sim.path, "--name", name, *LOOPBACK,
        "--state-dir", str(state), "--status-file", str(status_file),
    )  # fmt: skip
    proc = Proc(["prlimit", "--nofile=40:40", *args], mesh_env, tmp_path, "fd-gw").start()
    try:
        assert wait_until(lambda: read_json(status_file).get("port"), 60), proc.stderr()
        port = read_json(status_file)["port"]
        key_out = Proc(
            [*zeke_cmd("gateway", "--name", name, "--state-dir", str(state), "--show-key")],
            mesh_env,
            tmp_path,
            "fd-key",
        ).start()
        assert key_out.proc is not None and key_out.proc.wait(60) == 0
        key = parse_key(key_out.stdout().strip().rsplit(" ", 1)[-1])

        async def exhaust() -> None:
            # All at once: the gateway has far fewer descriptors than connections arriving.
            tried = await asyncio.gather(
                *(connect(port, f"127.0.2.{1 + i % 250}") for i in range(200)),
                return_exceptions=True,
            )
            conns = [c for c in tried if isinstance(c, tuple)]
            await asyncio.sleep(3)
            for _, w in conns:
                w.close()
            await asyncio.sleep(2)
            await handshake(port, key, "127.0.3.1")

        asyncio.run(exhaust())
        err = proc.stderr()
        assert "Traceback" not in err
        assert err.count("out of file descriptors") <= 2, err[-3000:]
        assert len(err) < 20_000, f"{len(err)} bytes of log"
        assert wait_until(lambda: read_json(status_file).get("accept_pauses", 0) >= 1, 20)
        assert proc.alive()
    finally:
        proc.stop()


def test_five_hundred_hostile_connections(lone_gateway, node_sim: NodeSimulator) -> None:  # type: ignore[no-untyped-def]
    """Framing fuzz, reflections, v1 lines, oversize lines and cut streams, 20 at a time."""
    gw, key, port = lone_gateway
    rng = random.Random(13)
    lines = fuzz_lines(4000, seed=13)
    cases: list[bytes] = []
    for i in range(500):
        kind = i % 5
        if kind == 0:  # fuzzed lines, then EOF
            cases.append(b"".join(rng.choice(lines) + b"\n" for _ in range(rng.randint(1, 12))))
        elif kind == 1:  # raw bytes, no LF at all
            cases.append(rng.randbytes(rng.randint(1, 3000)))
        elif kind == 2:  # an opening hello, then a forged proof for a guessed challenge
            nonce = new_nonce()
            forged = p.Hello("app", "cam", "1.0", nonce, new_nonce(), 0)
            cases.append(opening(nonce) + p.encode(forged, rng.randbytes(16)))
        elif kind == 3:  # oversize lines and a v1 hello in one stream
            v1 = f"Z1 HELLO app a 1 {new_nonce()} - 0\n".encode()
            cases.append(b"Z2 " + b"A" * rng.randint(128, 5000) + b"\n" + v1)
        else:  # a gateway-tagged line from a "previous session" offered as everything
            gwline = p.encode(p.Ack(5), key, p.gateway_to(new_nonce()))
            cases.append(opening(new_nonce()) + gwline * 3)

    async def one(i: int, data: bytes, sem: asyncio.Semaphore) -> bool:
        async with sem:
            try:
                reader, writer = await connect(port, f"127.0.4.{1 + i % 250}")
            except (OSError, asyncio.TimeoutError):
                return False
            try:
                for start in range(0, len(data), 700):
                    writer.write(data[start : start + 700])
                    await writer.drain()
                writer.write_eof()
                got = b""
                while line := await read_line(reader, 8):
                    got += line
                # Nothing but its own answer to an opening hello ever comes back.
                return all(
                    ln.startswith(p.encode_head("HELLO") + b"gw ") for ln in got.splitlines()
                )
            except OSError:  # the gateway hung up first: fine
                return True
            finally:
                writer.close()

    async def run_all() -> list[bool]:
        sem = asyncio.Semaphore(20)
        return await asyncio.gather(*(one(i, d, sem) for i, d in enumerate(cases)))

    results = asyncio.run(run_all())
    assert len(results) == 500 and all(results)
    status = gw.status()
    assert status["sessions"] == 0 and status["events_relayed"] == 0
    assert node_sim.event_lines() == []
    assert "Traceback" not in gw.proc.stderr()
    asyncio.run(handshake(port, key))  # and a keyed appliance still gets in


def test_a_gateway_whose_mcu_never_answers_says_what_to_do(
    mesh_env: dict[str, str], tmp_path: Path
) -> None:
    """Started before its MCU is flashed: one line on what it waits for, no traceback."""
    with NodeSimulator(key=None, node_id="mute", answer_hello=False) as sim:
        args = zeke_cmd(
            "gateway", "--serial", sim.path, "--name", unique("mute-gw"), *LOOPBACK,
            "--state-dir", str(tmp_path / "mute.state"),
        )  # fmt: skip
        proc = Proc(args, mesh_env, tmp_path, "mute-gw").start()
        try:
            assert wait_until(lambda: "waiting for the MCU" in proc.stderr(), 30), proc.stderr()
            time.sleep(4)  # several retries with backoff
            assert proc.alive()
            err = proc.stderr()
            assert err.count("waiting for the MCU") == 1 and "firmware/gateway" in err
            assert "Traceback" not in err
        finally:
            assert proc.stop() == 0


def test_a_name_taken_on_the_network_is_a_clear_error(
    start_gateway, mesh_env: dict[str, str], tmp_path: Path
) -> None:
    """Pairings are by name, so zeke never renames itself silently: the second one refuses."""
    with NodeSimulator(node_id="a") as sim_a, NodeSimulator(node_id="b") as sim_b:
        name = unique("twin-gw")
        start_gateway(name, sim_a.path)
        args = zeke_cmd(
            "gateway", "--serial", sim_b.path, "--name", name, *LOOPBACK,
            "--state-dir", str(tmp_path / "twin.state"),
        )  # fmt: skip
        twin = Proc(args, mesh_env, tmp_path, "twin-gw").start()
        assert twin.proc is not None
        assert twin.proc.wait(60) != 0
        err = twin.stderr()
        assert "another gateway already advertises the name" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["fifo", "huge", "deep", "not-json", "directory"])
def test_hostile_mesh_state_files_are_named_errors(kind: str, tmp_path: Path) -> None:
    """The pairings file, a gateway identity and the MQTT password file: no hang, no traceback."""
    import os

    from hostile import refused, zeke

    state = tmp_path / "state"
    files = {
        "pairings": state / "mesh" / "pairings.json",
        "identity": state / "gateway" / unique("g1") / "identity.json",
        "password": tmp_path / "mqtt.pw",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(path, 0o600)
        elif kind == "directory":
            path.mkdir()
        else:
            body = {"huge": b" " * (2 << 20), "deep": b"[" * 100_000, "not-json": b"\xff{"}[kind]
            path.write_bytes(body)
            path.chmod(0o600)
    env = {"ZEKE_STATE_DIR": str(state)}
    for args in (
        ("mesh", "list", "--timeout", "0.3", *LOOPBACK),
        ("gateway", "--name", unique("g1"), "--show-key"),
    ):
        ended = zeke(*args, env=env, deadline=30)
        assert refused(ended), ended.describe()
    from zeke.errors import ConfigError
    from zeke.mesh.settings import MqttSettings

    settings = MqttSettings(enabled=True, host="127.0.0.1", password_file=files["password"])
    if kind != "not-json":  # a password file is text, so only the other kinds are hostile
        with pytest.raises(ConfigError):
            settings.resolve_password()
