"""``zeke nodes`` and ``zeke flash-node``: Particle mesh nodes on USB serial.

``zeke nodes --json`` prints one object (a documented, tested contract)::

    {"devices": [{"port": str, "platform": str | null, "platform_id": int | null,
                  "device_id": str | null, "mode": "listening" | "normal" | "unknown",
                  "device_os": str | null,
                  "usb": {"vid": str | null, "pid": str | null, "product": str | null},
                  "error": str | null}],
     "unidentified_ports": [str]}

``mode`` comes from probing the console with ``v`` (only a listening device answers, and then
``device_os`` is its version); ``error`` says why a port could not be probed (busy, permission).
``--no-probe`` skips opening ports: every ``mode`` is then ``"unknown"``.

``zeke nodes info PORT --json`` prints::

    {"port": str, "mode": "listening", "device_os": str, "device_id": str | null,
     "serial_number": str | null, "imei": str | null, "iccid": str | null,
     "platform": str | null, "platform_id": int | null, "modules": [object] | null}

where ``modules`` is the device's ``s`` inventory as the device sends it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from zeke.errors import UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 flashed and back; 2 no device / several without --port; 3 port busy, "
    "permission denied or ModemManager; 4 not in listening mode; 5 invalid firmware (nothing "
    "sent); 6 Device OS 6+ or device without serial flashing (use DFU); 7 a phase timed out; "
    "8 device rejected the image; 9 transfer aborted or device disconnected."
)
FLASH_HELP = (
    "Flash an application (.bin) to a Particle Argon/Boron/Xenon over USB serial (listening "
    "mode + YMODEM). The file is validated before any port is opened; the platform is checked "
    "against the USB id before a byte is sent; Device OS 6+ is refused with the DFU path. "
    "After the transfer zeke waits for the node to restart and reads its version again "
    "(switching it into listening mode at 28800 baud and back out with 'x' when it boots "
    "into its application). $ZEKE_PARTICLE_TIMEOUT_SCALE multiplies every phase timeout. "
    + EXIT_CODES_HELP
)

nodes_app = typer.Typer(help="Particle nodes on USB serial (VID 2B04).")


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _text(value) -> str:
    """A file name or a device's answer as printable text, never rich markup."""
    from rich.markup import escape

    from zeke.inputs import shown

    return escape(shown(str(value)))


def _probe(port) -> dict:
    from zeke.particle.console import ListeningConsole
    from zeke.particle.errors import ParticleError
    from zeke.particle.flash import FlashTimeouts
    from zeke.particle.port import Link

    entry = {**port.to_json(), "mode": "unknown", "device_os": None, "error": None}
    try:
        with Link.open(port.device) as link:
            version = ListeningConsole(link, probe_timeout=FlashTimeouts.from_env().probe)
            found = version.probe_version()
    except ParticleError as err:
        entry["error"] = err.message
        return entry
    entry["mode"] = "listening" if found else "normal"
    entry["device_os"] = found
    return entry


@nodes_app.callback(invoke_without_command=True)
def nodes(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the JSON contract (see module)."),
    no_probe: bool = typer.Option(False, "--no-probe", help="List only; do not open ports."),
) -> None:
    """List Particle devices on USB serial: port, platform, device id, mode, Device OS."""
    if ctx.invoked_subcommand is not None:
        return
    from zeke.particle.discovery import scan

    found, unknown = scan()
    entries = []
    for port in found:
        if no_probe:
            entries.append({**port.to_json(), "mode": "unknown", "device_os": None, "error": None})
        else:
            entries.append(_probe(port))
    if as_json:
        typer.echo(json.dumps({"devices": entries, "unidentified_ports": unknown}, indent=2))
        return
    console = _console()
    if not entries:
        console.print(
            "No Particle device found on USB serial (VID 2B04). If the LED blinks yellow the "
            "device is in DFU mode."
        )
    else:
        from rich.table import Table

        table = Table()
        for column in ("port", "platform", "device id", "mode", "Device OS"):
            table.add_column(column)
        for entry in entries:
            table.add_row(  # what a device reports is its text, never markup
                _text(entry["port"]),
                _text(entry["platform"] or "?"),
                _text(entry["device_id"] or "?"),
                _text(entry["mode"]) if not entry["error"] else f"[red]{_text(entry['error'])}[/]",
                _text(entry["device_os"] or "-"),
            )
        console.print(table)
    for path in unknown:
        console.print(
            f"[dim]unidentified serial port {_text(path)}: pass it with --port if it is one[/]"
        )


@nodes_app.command("info")
def info(
    port: str = typer.Argument(..., help="Serial port of the device, e.g. /dev/ttyACM0."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON contract (see module)."),
    enter_listening: bool = typer.Option(
        False, "--enter-listening", help="Send the 28800-baud listening trigger if needed."
    ),
) -> None:
    """Version (v), device id (i) and modules (s) from the listening-mode console."""
    from zeke.particle.console import ListeningConsole
    from zeke.particle.errors import NotListeningError
    from zeke.particle.flash import FlashTimeouts
    from zeke.particle.platforms import platform_by_id
    from zeke.particle.port import Link

    timeouts = FlashTimeouts.from_env()
    with Link.open(port) as link:
        console = ListeningConsole(link, probe_timeout=timeouts.probe)
        version = console.probe_version()
        if version is None and enter_listening:
            version = console.enter_listening(timeouts.listen)
        if version is None:
            raise NotListeningError(
                f"Device on {port} is not in listening mode. Hold MODE ~3 s until it blinks "
                "dark blue, or rerun with --enter-listening."
            )
        ident = console.identity(timeouts.console)
        modules = console.modules(timeouts.console)
    platform_id = modules.get("p") if modules else None
    platform = platform_by_id(platform_id) if platform_id is not None else None
    doc = {
        "port": port,
        "mode": "listening",
        "device_os": version,
        "device_id": ident.device_id,
        "serial_number": ident.serial_number,
        "imei": ident.imei,
        "iccid": ident.iccid,
        "platform": platform.name if platform else None,
        "platform_id": platform_id,
        "modules": modules.get("m") if modules else None,
    }
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.table import Table

    from zeke.particle.platforms import MODULE_FUNCTIONS

    out = _console()
    out.print(f"[bold]{_text(port)}[/]  {platform.title if platform else 'unknown platform'}")
    out.print(f"Device OS {_text(version)} · device id {_text(ident.device_id or '?')}")
    for key in ("serial_number", "imei", "iccid"):
        if doc[key]:
            out.print(f"{key.replace('_', ' ')}: {_text(doc[key])}")
    if doc["modules"]:
        by_char = {char: name for name, char in MODULE_FUNCTIONS.values()}
        table = Table()
        for column in ("module", "index", "version", "location", "max size", "valid"):
            table.add_column(column)
        for module in doc["modules"]:
            valid = "yes" if module.get("vc") == module.get("vv") else f"no ({module.get('vv')})"
            table.add_row(
                _text(by_char.get(module.get("f"), module.get("f"))),
                _text(module.get("n")),
                _text(module.get("v")),
                _text(
                    {"m": "main", "b": "backup", "f": "factory", "t": "temp"}.get(
                        module.get("l"), module.get("l")
                    )
                ),
                _text(module.get("s")),
                _text(valid),
            )
        out.print(table)


def flash_node_command(
    firmware: Path = typer.Argument(..., help="Application binary (.bin) to flash."),
    port: str = typer.Option(None, "--port", "-p", help="Serial port (needed with several)."),
    enter_listening: bool = typer.Option(
        False, "--enter-listening", help="Put the device in listening mode (28800-baud trigger)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and check the device; send nothing."
    ),
    block_size: int = typer.Option(
        1024, "--block-size", help="YMODEM block size: 1024 (fast) or 128 (as the Particle CLI)."
    ),
) -> None:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from zeke.particle.flash import flash_node

    if block_size not in (128, 1024):
        raise UsageError(f"--block-size must be 128 or 1024, not {block_size}")
    out = _console()

    def confirm(plan) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError(
                "refusing to flash without confirmation on a non-interactive input",
                "pass --yes",
            )
        before = plan.before
        return typer.confirm(
            f"Flash {plan.image.name} ({plan.image.size} bytes) to the node {before.device_id} "
            f"on {before.port} (Device OS {before.device_os})?"
        )

    progress = Progress(
        TextColumn("[bold]sending[/]"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    )
    task = None

    def on_progress(sent: int, total: int) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("send", total=total)
        progress.update(task, completed=sent)
        if sent >= total:
            progress.stop()

    try:
        result = flash_node(
            firmware,
            port=port,
            enter_listening=enter_listening,
            block_size=block_size,
            dry_run=dry_run,
            confirm=confirm,
            on_progress=on_progress,
            report=lambda text: out.print(f"[dim]{_text(text)}[/]"),
        )
    finally:
        progress.stop()
    image, before = result.image, result.before
    if dry_run:
        out.print(
            f"dry run: {image.name} ({image.size} bytes, {image.info.function_name}, "
            f"0x{image.info.start:05X}) is valid for the device on {before.port} "
            f"(mode {before.mode}, Device OS {before.device_os or 'unknown'}); nothing was sent",
            markup=False,
        )
        return
    rate = result.throughput
    phases = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in result.phases.items())
    out.print(
        f"[green]flashed[/] {_text(image.name)}: {image.size} bytes in {result.data_blocks} "
        f"blocks of {result.block_size}" + (f", {rate / 1024:.1f} KB/s" if rate else "")
    )
    after = result.after
    if after is not None:
        version = after.device_os or "version not readable"
        out.print(
            f"node {after.device_id or ''} back on {after.port} ({after.mode}, {version})",
            markup=False,
        )
    out.print(f"[dim]{phases}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(nodes_app, name="nodes")
    app.command(
        "flash-node",
        help=FLASH_HELP,
        short_help="Flash an application to a Particle node over USB serial.",
    )(flash_node_command)
