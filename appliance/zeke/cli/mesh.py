"""``zeke mesh list|pair|unpair|run`` and ``zeke gateway``: the appliance's microcontroller mesh.

``zeke mesh list --json`` prints one JSON document::

    {"gateways": [{"name": str, "id": str, "proto": str, "fw": str, "nodes": int,
                   "host": str, "port": int, "addresses": [str], "txt": {str: str},
                   "paired": bool}]}

``zeke mesh pair NAME --json`` prints ``{"name", "id", "address", "port", "pairing_file"}``.

``zeke mesh run`` prints each checked node command as one JSON line on stdout::

    {"type": "command", "gateway": str, "node": str, "command": "yes|no|capture|reset",
     "track_id": int, "seq": int, "ts": float}

and serves the same lines on the commands socket (next to the event socket by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import sys
import time
from pathlib import Path

import typer

from zeke.errors import UsageError
from zeke.mesh.settings import MqttSettings

mesh_app = typer.Typer(
    help="Find, pair with and feed the gateways of the microcontroller mesh.",
    no_args_is_help=True,
)

_INTERFACE_HELP = (
    "mDNS/bind interface: an IPv4 address or interface name (repeatable; default all)."
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _appliance_id(name: str | None) -> str:
    raw = name or socket.gethostname().split(".")[0]
    return (re.sub(r"[^A-Za-z0-9_.-]", "-", raw) or "zeke")[:24]


def _mqtt_settings(base: MqttSettings, **options: object) -> MqttSettings:
    """The ``[mqtt]`` section with the command's options on top; a host given turns it on."""
    update = {k: v for k, v in options.items() if v is not None}
    if "host" in update:
        update["enabled"] = True
    if update.get("tls") and "port" not in update and base.port == 1883:
        update["port"] = 8883
    return base.with_options(update)


def _run_until_signal(main, stop) -> None:  # type: ignore[no-untyped-def]
    """Run coroutine ``main`` until it ends or SIGTERM/SIGINT calls ``stop``."""

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        await main

    asyncio.run(runner())


@mesh_app.command("list")
def list_gateways(
    timeout: float = typer.Option(3.0, "--timeout", min=0.2, help="Seconds to listen."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (see `zeke mesh --help`)."),
    interface: list[str] = typer.Option([], "--interface", help=_INTERFACE_HELP),
    pairing_file: Path = typer.Option(None, "--pairing-file", help="Pairings file."),
) -> None:
    """Browse the network for gateways (`_zeke._tcp`) and show them."""
    from zeke.mesh.discovery import browse
    from zeke.mesh.pairing import PairingStore

    gateways = asyncio.run(browse(timeout, interface or None))
    paired = PairingStore(pairing_file).load()
    if as_json:
        docs = [{**g.as_json(), "paired": g.name in paired} for g in gateways]
        typer.echo(json.dumps({"gateways": docs}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"zeke gateways ({len(gateways)} found in {timeout:g} s)")
    for column in ("name", "id", "address", "proto", "fw", "nodes", "paired"):
        table.add_column(column)
    for g in gateways:
        address = f"{g.addresses[0]}:{g.port}" if g.addresses else f"{g.host}:{g.port}"
        table.add_row(
            g.name, g.id, address, g.proto, g.fw, str(g.nodes), "yes" if g.name in paired else ""
        )
    Console().print(table)
    if not gateways:
        Console(stderr=True).print(
            f"[yellow]no gateway answered within {timeout:g} s.[/] Is one powered and on this "
            "network (an Argon running firmware/gateway, or `zeke gateway --serial PORT`)? "
            "Multicast DNS must pass between them; a slow network may need --timeout 10."
        )


@mesh_app.command("pair")
def pair(
    name: str = typer.Argument(..., help="The gateway's advertised name (see `zeke mesh list`)."),
    key: str = typer.Option(
        None, "--key", help="The gateway's key (`zeke gateway --show-key`); prompted if absent."
    ),
    timeout: float = typer.Option(3.0, "--timeout", min=0.2, help="Seconds to look for it."),
    interface: list[str] = typer.Option([], "--interface", help=_INTERFACE_HELP),
    pairing_file: Path = typer.Option(None, "--pairing-file", help="Pairings file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (see `zeke mesh --help`)."),
) -> None:
    """Pair with a gateway: check its key by a handshake and store it for `zeke mesh run`."""
    from zeke.errors import ZekeError
    from zeke.mesh.auth import parse_key
    from zeke.mesh.discovery import browse, protocol_mismatch
    from zeke.mesh.forwarder import HandshakeFailed, TcpSession
    from zeke.mesh.link import LinkClosed
    from zeke.mesh.pairing import Pairing, PairingStore
    from zeke.mesh.protocol import DropCounters

    if key is None:
        if not sys.stdin.isatty():
            raise UsageError("no key given", hint="pass --key KEY (from `zeke gateway --show-key`)")
        key = typer.prompt(f"key of gateway {name}", hide_input=True)
    secret = parse_key(key)
    gateways = {g.name: g for g in asyncio.run(browse(timeout, interface or None))}
    gateway = gateways.get(name)
    if gateway is None or not gateway.addresses:
        found = ", ".join(sorted(gateways)) or "none"
        raise ZekeError(
            f"no gateway named {name!r} answered within {timeout:g} s (found: {found})",
            hint="check that it runs and is on this network: `zeke mesh list`",
        )
    mismatch = protocol_mismatch(gateway)
    if mismatch is not None:
        raise ZekeError(mismatch, hint="pairing needs both sides on the same protocol version")
    store = PairingStore(pairing_file)
    old = store.get(name)
    candidate = Pairing(name, gateway.id, secret, time.time())
    if old is not None:
        candidate.next_seq = old.next_seq  # sequence numbers keep growing across re-pairing

    async def handshake() -> str:
        errors = []
        for address in gateway.addresses:
            try:
                session = await TcpSession.open(
                    address, gateway.port, candidate, _appliance_id(None), DropCounters()
                )
            except (OSError, asyncio.TimeoutError) as err:
                errors.append(f"{address}: {err}")
                continue
            await session.close()
            return address
        raise ZekeError(
            f"cannot connect to gateway {name!r}: {'; '.join(errors)}",
            hint="check the gateway's firewall and that it is still running",
        )

    try:
        address = asyncio.run(handshake())
    except HandshakeFailed as err:
        raise ZekeError(
            f"gateway {name!r} did not accept the key",
            hint=f"copy it again: on the gateway run `zeke gateway --show-key --name {name}`",
        ) from err
    except (LinkClosed, asyncio.TimeoutError) as err:
        raise ZekeError(
            f"gateway {name!r} hung up during the handshake ({err or 'timeout'})",
            hint="check that it is a zeke gateway of this protocol version: `zeke mesh list`",
        ) from err
    store.put(candidate)
    if as_json:
        doc = {
            "name": name,
            "id": gateway.id,
            "address": address,
            "port": gateway.port,
            "pairing_file": str(store.path),
        }
        typer.echo(json.dumps(doc))
    else:
        typer.echo(f"paired with gateway {name} (id {gateway.id}) at {address}:{gateway.port}")


@mesh_app.command("unpair")
def unpair(
    name: str = typer.Argument(..., help="The gateway to forget."),
    pairing_file: Path = typer.Option(None, "--pairing-file", help="Pairings file."),
) -> None:
    """Forget a gateway's key: `zeke mesh run` sends it nothing from now on."""
    from zeke.mesh.pairing import PairingStore

    if not PairingStore(pairing_file).remove(name):
        raise UsageError(f"gateway {name!r} is not paired", hint="see `zeke mesh list`")
    typer.echo(f"forgot gateway {name}")


@mesh_app.command("run")
def run(
    serial: str = typer.Option(
        None, "--serial", help="Direct mode: an MCU on this serial port, no network."
    ),
    name: str = typer.Option("direct", "--name", help="Pairing name for direct mode."),
    gateway: list[str] = typer.Option(
        [], "--gateway", help="Only these paired gateways (repeatable; default all)."
    ),
    events_socket: Path = typer.Option(None, "--events-socket", help="Event socket to read."),
    commands_socket: Path = typer.Option(
        None, "--commands-socket", help="Serve node commands here (default: next to events)."
    ),
    pairing_file: Path = typer.Option(None, "--pairing-file", help="Pairings file."),
    interface: list[str] = typer.Option([], "--interface", help=_INTERFACE_HELP),
    queue_size: int = typer.Option(
        None, "--queue-size", min=1, help="Events kept per gateway ([mesh] queue_size: 1000)."
    ),
    baud: int = typer.Option(None, "--baud", help="Serial baud rate ([mesh] baud: 115200)."),
    status_file: Path = typer.Option(None, "--status-file", help="Write counters here (JSON)."),
    wait: bool = typer.Option(
        False,
        "--wait",
        help="With nothing to forward to yet, wait for a pairing instead of exiting (services).",
    ),
    config: Path = typer.Option(None, "--config", help="Config file ([mesh], [mqtt], [device])."),
    device_name: str = typer.Option(None, "--device-name", help="This appliance's name."),
    mqtt_host: str = typer.Option(None, "--mqtt-host", help="Also publish to this MQTT broker."),
    mqtt_port: int = typer.Option(None, "--mqtt-port", help="MQTT port (1883, 8883 with TLS)."),
    mqtt_username: str = typer.Option(None, "--mqtt-username", help="MQTT user name."),
    mqtt_password_file: Path = typer.Option(
        None, "--mqtt-password-file", help="File holding the MQTT password ($ZEKE_MQTT_PASSWORD)."
    ),
    mqtt_tls: bool = typer.Option(None, "--mqtt-tls", help="Connect to the broker over TLS."),
    mqtt_ca_file: Path = typer.Option(None, "--mqtt-ca-file", help="CA bundle for TLS."),
    mqtt_prefix: str = typer.Option(None, "--mqtt-prefix", help="MQTT topic prefix (zeke)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log connections to stderr."),
) -> None:
    """Forward events from the local socket to paired gateways (or a serial MCU); commands back."""
    from zeke.config import load_config
    from zeke.events import EventServer, default_socket_path
    from zeke.mesh.auth import new_key
    from zeke.mesh.forwarder import Forwarder, NodeCommand
    from zeke.mesh.pairing import PairingStore

    _setup_logging(verbose)
    cfg = load_config(config).config
    settings = cfg.mesh.model_copy(
        update={
            k: v
            for k, v in {"interfaces": interface, "queue_size": queue_size, "baud": baud}.items()
            if v
        }
    )
    device_name = device_name or cfg.device.name
    store = PairingStore(pairing_file or settings.pairing_file)
    mqtt = _mqtt_settings(
        cfg.mqtt,
        host=mqtt_host,
        port=mqtt_port,
        username=mqtt_username,
        password_file=mqtt_password_file,
        tls=mqtt_tls,
        ca_file=mqtt_ca_file,
        topic_prefix=mqtt_prefix,
    )
    if serial is not None:
        store.ensure(name, "serial", new_key)
    elif not store.load() and not mqtt.enabled and not wait:
        raise UsageError(
            "no paired gateways and no MQTT broker: nothing to forward to",
            hint="pair one first (`zeke mesh list`, `zeke mesh pair NAME`), give --mqtt-host "
            "or set [mqtt] enabled = true",
        )
    elif not store.load() and not mqtt.enabled:
        logging.getLogger(__name__).warning(
            "no paired gateways yet: waiting for `zeke mesh pair NAME` (%s)", store.path
        )
    events = Path(events_socket) if events_socket else default_socket_path()
    commands = EventServer(commands_socket or events.parent / "commands.sock")
    sink = None
    if mqtt.enabled:
        from zeke.mesh.mqtt import MqttSink

        mqtt.resolve_password()  # an unreadable password file stops us here, not later
        sink = MqttSink(mqtt, device_id=_appliance_id(device_name), device_name=device_name)

    def on_command(cmd: NodeCommand) -> None:
        sys.stdout.write(cmd.to_json() + "\n")
        sys.stdout.flush()
        commands.publish(cmd)  # type: ignore[arg-type]

    forwarder = Forwarder(
        settings,
        events,
        store,
        _appliance_id(device_name),
        serial_port=serial,
        serial_name=name,
        only=gateway,
        status_file=status_file,
        on_command=on_command,
        sink=sink,
    )
    from zeke.events import SocketUnavailable

    try:
        commands.start()
    except (OSError, SocketUnavailable) as err:  # commands stay on stdout; a taken path stops us
        logging.getLogger(__name__).warning("commands socket unavailable: %s", err)
    if sink is not None:
        sink.start()
    try:
        _run_until_signal(forwarder.run(), forwarder.stop)
    finally:
        if sink is not None:
            sink.close()
        commands.close()


def gateway_command(
    serial: str = typer.Option(None, "--serial", help="The MCU's serial port or UART."),
    name: str = typer.Option(None, "--name", help="Advertised name (default: <host>-gateway)."),
    interface: list[str] = typer.Option([], "--interface", help=_INTERFACE_HELP),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="TCP port (0: any free one)."),
    baud: int = typer.Option(115200, "--baud", help="Serial baud rate."),
    state_dir: Path = typer.Option(None, "--state-dir", help="Where the id and key live."),
    show_key: bool = typer.Option(False, "--show-key", help="Print the pairing key and exit."),
    ttl: int = typer.Option(120, "--ttl", min=1, max=4500, help="mDNS record TTL (seconds)."),
    status_file: Path = typer.Option(None, "--status-file", help="Write counters here (JSON)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log connections to stderr."),
) -> None:
    """Run a software gateway: advertise `_zeke._tcp`, relay paired events to a serial MCU."""
    from zeke.mesh.auth import format_key
    from zeke.mesh.gateway import (
        Gateway,
        GatewayIdentity,
        check_name,
        default_name,
        gateway_state_dir,
    )

    _setup_logging(verbose)
    name = check_name(name or default_name())
    identity = GatewayIdentity.load_or_create(gateway_state_dir(name, state_dir))
    if show_key:
        typer.echo(f"gateway {name} (id {identity.id}) key: {format_key(identity.key)}")
        return
    if serial is None:
        raise UsageError("--serial is required", hint="e.g. zeke gateway --serial /dev/ttyACM0")
    gateway = Gateway(
        name,
        serial,
        identity,
        interfaces=interface or None,
        port=port,
        baud=baud,
        ttl=ttl,
        status_file=status_file,
    )
    _run_until_signal(gateway.run(), gateway.stop)


def register(app: typer.Typer) -> None:
    app.add_typer(mesh_app, name="mesh")
    app.command("gateway")(gateway_command)
