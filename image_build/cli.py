"""``python -m image_build``: build, plan and boot-test images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from zeke.errors import ZekeError

app = typer.Typer(
    name="image_build",
    help="Reproducible zeke OS images: declarative board profiles, mmdebstrap, qemu boot tests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command()
def build(
    profile: str = typer.Argument(..., help="Profile name (see `profiles`) or a .toml path."),
    out: Path = typer.Option(..., "--out", help="Output directory (outside the checkout)."),
    offline: bool = typer.Option(
        False, "--offline", help="Leave vendor repositories out; the manifest lists what."
    ),
    lock: Path | None = typer.Option(
        None, "--lock", help="Locked requirements (default: requirements.lock in the checkout)."
    ),
    work: Path | None = typer.Option(
        None, "--work", help="Scratch directory (default: OUT/.work-PROFILE)."
    ),
    trusted_keys: Path | None = typer.Option(
        None, "--trusted-keys", help="Directory of model-bundle keys for /etc/zeke/trusted-keys/."
    ),
    keep_work: bool = typer.Option(False, "--keep-work", help="Keep the scratch directory."),
) -> None:
    """Build PROFILE into OUT: <profile>.img.zst, .sha256, .manifest.json, .sbom.cdx.json."""
    from image_build.build import make_context, run_build

    ctx = make_context(
        profile,
        out,
        offline=offline,
        lock=lock,
        work_dir=work,
        trusted_keys=trusted_keys,
        keep_work=keep_work,
    )
    data = run_build(ctx)
    outputs = data["outputs"]
    image = ctx.output(".img.zst")
    typer.echo(f"{image}  {outputs[image.name]['sha256']}")


@app.command()
def plan(
    profile: str = typer.Argument(..., help="Profile name or a .toml path."),
    offline: bool = typer.Option(False, "--offline", help="Plan an --offline build."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the plan as JSON (the format of expectations/*.plan.json)."
    ),
) -> None:
    """Print the resolved plan: sources, package set, steps, layout, boot, payload.

    --json prints one object with keys profile, description, board, architecture,
    distribution, apt_sources, packages, vendor, offline, left_out, layout, partitions, boot,
    payload, steps and notes; it is what the checked-in expectations hold.
    """
    from image_build.plan import resolve
    from image_build.profile import load_profile
    from image_build.render import render_plan

    resolved = resolve(load_profile(profile), offline=offline)
    if as_json:
        sys.stdout.write(resolved.to_json())
        return
    render_plan(resolved)


@app.command()
def profiles() -> None:
    """List the board profiles."""
    from image_build.profile import available_profiles, load_profile

    for name in available_profiles():
        typer.echo(f"{name:20} {load_profile(name).description}")


@app.command("boot-test")
def boot_test(
    image: Path = typer.Argument(
        ..., help="An .img.zst built by `build` (its manifest beside it)."
    ),
    timeout: float = typer.Option(
        900.0, "--timeout", help="Seconds to wait for the kiosk's first event."
    ),
    accel: str = typer.Option(
        "auto", "--accel", help="auto (KVM when it boots, else TCG), kvm or tcg."
    ),
    console_log: Path | None = typer.Option(
        None, "--console-log", help="Write the serial console here."
    ),
    ready_only: bool = typer.Option(
        False, "--ready-only", help="For images without the kiosk: wait for a running system only."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Boot IMAGE in qemu and wait until the kiosk produced its first event; exit 0 then.

    --json prints {"image", "accel", "attempts", "system_state", "powered_off", "first_event"
    (the event object, or null with --ready-only), "kiosk_log", "seconds": {"to_kernel",
    "to_firstboot_done", "to_system_state", "to_first_event", "total"}, "console_log"}.
    """
    from image_build.boot import boot_image

    result = boot_image(
        image, timeout=timeout, accel=accel, console_log=console_log, ready_only=ready_only
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    seconds = result["seconds"]
    if result["first_event"] is not None:
        typer.echo(
            f"{image.name}: {result['accel']}: first event after "
            f"{seconds['to_first_event']:.1f} s, "
            f"system {result['system_state']}"
        )
    else:
        typer.echo(
            f"{image.name}: {result['accel']}: system {result['system_state']} after "
            f"{seconds['to_system_state']:.1f} s (no kiosk in this image)"
        )


@app.command("check")
def check_cmd(
    profile: str = typer.Argument(..., help="Profile name or a .toml path."),
    out: Path = typer.Option(..., "--out", help="Output directory (first/ and second/ inside)."),
    twice: bool = typer.Option(
        False, "--twice", help="Build again from scratch and compare hashes."
    ),
    boot: bool = typer.Option(True, "--boot/--no-boot", help="Boot-test the first build."),
    timeout: float = typer.Option(1800.0, "--timeout", help="Boot-test timeout in seconds."),
    keep_work: bool = typer.Option(
        False, "--keep-work", help="Keep both scratch directories (rootfs trees, tars) to compare."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Build PROFILE, boot it, optionally rebuild it; print stage times, sizes, hashes.

    --json prints {"profile", "stage_seconds", "build_seconds", "raw_bytes",
    "compressed_bytes", "sha256", "boot" (as boot-test --json), and with --twice
    "second_build_seconds", "second_sha256", "identical"}. Exits non-zero when the two
    builds differ or the boot test fails.
    """
    from rich.console import Console

    from image_build.check import check, render

    report = check(profile, out, boot=boot, twice=twice, timeout=timeout, keep_work=keep_work)
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        render(report, Console())


def _terminate(signum: int, frame: object) -> None:
    # Turn SIGTERM into SystemExit so qemu, mounts and scratch files are cleaned up.
    sys.exit(128 + signum)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except ZekeError as err:
        from rich.console import Console
        from rich.markup import escape

        console = Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(f"[bold red]error:[/] {escape(err.message)}")
        if err.hint:
            console.print(f"[dim]hint:[/] {escape(err.hint)}")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
