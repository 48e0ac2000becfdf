"""``zeke setup``: make this board ready: camera, detector, backend, name, system access.

Interactive by default: pick the camera from those found, see a test frame go through face
detection (faces found, timings), pick the detector range and the backend, name the device,
and the config is written. ``--yes`` takes the options given and sensible defaults without
asking (scripted installs, an image's first boot).

It also offers the system steps a user would otherwise look up: zeke's udev rules (cameras
for the ``video`` group, USB Edge TPUs and Particle devices for ``plugdev``, PCIe Edge TPUs
for ``apex``) in ``/etc/udev/rules.d/``, and membership of ``video``, ``plugdev`` and
``dialout`` (Particle nodes on USB serial), plus ``apex`` on boards with a PCIe Edge TPU, for
the user who runs zeke. ``--dry-run`` prints exactly what would change and changes nothing.
"""

from __future__ import annotations

import filecmp
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from zeke.errors import UsageError, ZekeError

SETUP_HELP = "Set this board up: camera, detector, backend, device name, udev rules, groups."
SETUP_EPILOG = (
    "Scripted: zeke setup --yes --camera v4l2:///dev/video0 --detector full --name door-1. "
    "Preview every change first with --dry-run."
)

GROUPS = ("video", "plugdev", "dialout")
DETECTORS = ("short", "full", "ssd")
BACKENDS = ("auto", "cpu", "edgetpu")
_PACKAGE = Path(__file__).resolve().parent.parent


def rules_dir() -> Path:
    """zeke's udev rules: inside the installed wheel, else the source checkout's."""
    for candidate in (_PACKAGE / "data" / "udev", _PACKAGE.parent.parent / "systemd" / "udev"):
        if any(candidate.glob("*.rules")):
            return candidate
    raise ZekeError(
        "zeke's udev rules are missing from this installation",
        hint="reinstall zeke (they ship as zeke/data/udev in the wheel)",
    )


@dataclass
class Change:
    """One change to the system: what it is, the exact command (if any), how to make it."""

    what: str
    apply: Callable[[], None]
    command: list[str] | None = None

    def describe(self) -> str:
        return f"{self.what}: {' '.join(self.command)}" if self.command else self.what


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ZekeError(
            f"{command[0]} is not installed", hint="install it, then run again"
        ) from None
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or err.stdout or "").strip().splitlines()
        raise ZekeError(
            f"`{' '.join(command)}` failed: {detail[-1] if detail else err.returncode}",
            hint="run it by hand to see why, then `zeke setup` again",
        ) from None


def _copy_rule(src: Path, dest: Path) -> Callable[[], None]:
    def apply() -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)

    return apply


def udev_changes(root: Path, source: Path | None = None) -> list[Change]:
    """Install zeke's rules where they are missing or differ, then reload udev."""
    source = source or rules_dir()
    target_dir = root / "etc/udev/rules.d"
    changes = []
    for rule in sorted(source.glob("*.rules")):
        dest = target_dir / rule.name
        if dest.exists() and filecmp.cmp(rule, dest, shallow=False):
            continue
        verb = "replace" if dest.exists() else "install"
        changes.append(Change(f"{verb} udev rule {dest} (from {rule})", _copy_rule(rule, dest)))
    if changes and root.resolve() == Path("/") and shutil.which("udevadm"):
        for command in (
            ["udevadm", "control", "--reload-rules"],
            ["udevadm", "trigger", "--action=change", "--subsystem-match=video4linux",
             "--subsystem-match=usb", "--subsystem-match=apex"],
        ):  # fmt: skip
            changes.append(Change("reload udev", lambda c=command: _run(c), command))
    return changes


def read_groups(root: Path) -> dict[str, set[str]]:
    """Group name -> member user names, from ``<root>/etc/group``."""
    groups: dict[str, set[str]] = {}
    try:
        lines = (root / "etc/group").read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        parts = line.split(":")
        if len(parts) >= 4 and parts[0]:
            groups[parts[0]] = {m for m in parts[3].split(",") if m}
    return groups


def user_exists(root: Path, user: str) -> bool:
    try:
        lines = (root / "etc/passwd").read_text().splitlines()
    except OSError:
        return False
    return any(line.split(":", 1)[0] == user for line in lines)


def default_user() -> str:
    """The account that will run zeke: the one behind sudo, else this one."""
    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.geteuid()).pw_name


def group_changes(root: Path, user: str, groups_needed: tuple[str, ...] = GROUPS) -> list[Change]:
    """Create missing groups and add ``user`` to each of ``groups_needed`` it is not in."""
    if user == "root":
        return []
    if not user_exists(root, user):
        raise UsageError(
            f"no user '{user}' in {root / 'etc/passwd'}",
            hint="pass --user NAME for the account that runs zeke",
        )
    groups = read_groups(root)
    prefix = [] if root.resolve() == Path("/") else ["--root", str(root)]
    changes = []
    for group in groups_needed:
        if group not in groups:
            command = ["groupadd", *prefix, "--system", group]
            changes.append(Change(f"create group {group}", lambda c=command: _run(c), command))
        if user not in groups.get(group, set()):
            command = ["usermod", *prefix, "-aG", group, user]
            changes.append(
                Change(f"add {user} to group {group}", lambda c=command: _run(c), command)
            )
    return changes


def system_changes(root: Path, user: str, board=None) -> list[Change]:
    """Everything ``--system`` would do on this board, in order."""
    needed = GROUPS
    if board is not None and any(t.bus == "pcie" for t in board.edgetpus):
        needed = (*GROUPS, "apex")
    return udev_changes(root) + group_changes(root, user, needed)


# -- the command ---------------------------------------------------------------------------


def escape(text: object) -> str:
    """``text`` with rich markup characters escaped (paths and messages contain [brackets])."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def _recommended_threads(board) -> int:
    cpus = board.details.get("cpus") or os.cpu_count() or 1
    return max(1, min(4, cpus // 2))


def _choose(console, title: str, choices: tuple[str, ...], default: str) -> str:
    from rich.prompt import Prompt

    return Prompt.ask(title, choices=list(choices), default=default, console=console)


def _pick_camera(console, cameras, current: str) -> str:
    from rich.prompt import Prompt

    options = [(f"{c.name} ({c.kind})", c.best_uri) for c in cameras]
    options.append(("the bundled demo clip (no camera needed)", "demo"))
    console.print("[bold]cameras[/]:" if cameras else "[bold]no camera found[/]:")
    for number, (name, uri) in enumerate(options, 1):
        console.print(f"  {number}. {escape(name)}  [dim]{escape(uri)}[/]")
    console.print(f"  {len(options) + 1}. another URI (rtsp://..., a file, a directory)")
    uris = [uri for _, uri in options]
    default = str(uris.index(current) + 1) if current in uris else "1"
    choice = Prompt.ask(
        "Camera",
        choices=[str(n) for n in range(1, len(options) + 2)],
        default=default,
        console=console,
    )
    if int(choice) <= len(options):
        return options[int(choice) - 1][1]
    return Prompt.ask("Camera URI", default=current, console=console)


def _validate_choice(value: str | None, allowed: tuple[str, ...], option: str) -> None:
    if value is not None and value not in allowed:
        raise UsageError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")


def _show_probe(console, probe) -> None:
    info = probe.info
    size = f"{info.get('width')}x{info.get('height')}" if info.get("width") else "?"
    extra = info.get("format") or info.get("codec") or ""
    uri = escape(info.get("uri", probe.uri))
    console.print(
        f"[green]camera ok[/]: {uri} ({info.get('kind')}, {size} {extra}) "
        f"opened in {probe.open_ms:.0f} ms, {probe.read_ms:.1f} ms per frame read"
    )


def _run_vision(console, frame, detector, backend, threads, min_score, models_dir) -> dict:
    from rich.table import Table

    from zeke.vision.pipeline import FacePipeline

    pipeline = FacePipeline.create(
        detector=detector,
        backend=backend,
        threads=threads,
        min_score=min_score,
        models_dir=models_dir,
    )
    pipeline.process(frame.image)  # the first run pays for allocation; time the second
    result = pipeline.process(frame.image)
    info = pipeline.backend_info
    timings = ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items())
    console.print(
        f"[green]vision ok[/]: {len(result.faces)} face(s) in the test frame; "
        f"{info.get('detector')} on {info.get('detect_backend', info.get('backend'))}; {timings}"
    )
    if info.get("reason"):
        console.print(f"[dim]backend: {info.get('backend')} ({escape(info['reason'])})[/]")
    if result.faces:
        table = Table(expand=False)
        for column in ("#", "box (x0, y0, x1, y1)", "score", "emotion"):
            table.add_column(column)
        for number, face in enumerate(result.faces, 1):
            emotion = f"{face.emotion} {face.emotion_score:.2f}" if face.emotion else "-"
            box = ", ".join(f"{v:.0f}" for v in face.box)
            table.add_row(str(number), box, f"{face.score:.2f}", emotion)
        console.print(table)
    return info


def setup(
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Ask nothing: use the options given, else defaults."
    ),
    camera: str = typer.Option(
        None, "--camera", help="Camera URI (v4l2://, csi://, file://, rtsp://, auto, demo)."
    ),
    detector: str = typer.Option(None, "--detector", help="short | full | ssd (Edge TPU)."),
    backend: str = typer.Option(None, "--backend", help="auto | cpu | edgetpu."),
    name: str = typer.Option(None, "--name", help="This device's name (events, mesh)."),
    threads: int = typer.Option(None, "--threads", min=1, max=64, help="Inference threads."),
    config: Path = typer.Option(None, "--config", help="Config file to write."),
    test: bool = typer.Option(
        True, "--test/--no-test", help="Grab a test frame and run face detection on it."
    ),
    system: bool = typer.Option(
        None,
        "--system/--no-system",
        help="Install udev rules and add the user to video/plugdev/dialout (needs root). "
        "Asked when interactive; with --yes only when --system is given.",
    ),
    user: str = typer.Option(
        None, "--user", help="Account to add to the groups (default: $SUDO_USER, else you)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the config and system changes; change nothing."
    ),
    root: Path = typer.Option(
        Path("/"), "--root", hidden=True, help="Board tree to inspect and change (fixtures)."
    ),
) -> None:
    from pydantic import ValidationError
    from rich.console import Console
    from rich.prompt import Confirm, Prompt

    from zeke.board import detect_board
    from zeke.camera.discovery import discover_cameras
    from zeke.camera.probe import probe_camera
    from zeke.camera.uri import parse_uri
    from zeke.config import ZekeConfig, locate, read_config, save_config, to_toml, validation_error

    console = Console(highlight=False, soft_wrap=True)
    interactive = not yes
    if system and not dry_run and os.geteuid() != 0:
        raise ZekeError(
            "--system changes udev rules and groups and needs root",
            hint="run `sudo zeke setup ...` with the same options, or drop --system",
        )
    _validate_choice(detector, DETECTORS, "--detector")
    _validate_choice(backend, BACKENDS, "--backend")
    camera_given = camera is not None
    if camera_given:
        parse_uri(camera)

    board = detect_board(root)
    console.print(f"[bold]board[/]: {escape(board.summary())}")
    plan = board.plan()
    console.print(
        f"[dim]detector: {escape(plan['detector'])}; emotion: {escape(plan['emotion'])} "
        f"({escape(plan['reason'])})[/]"
    )

    location = locate(config)
    target = location.write_path
    current = ZekeConfig()
    fresh = True
    if target.exists():
        try:
            current = read_config(target)
            fresh = False
        except ZekeError as err:
            console.print(
                f"[yellow]the existing config is invalid[/] ({escape(err.message)}); "
                f"it will be replaced and kept as {escape(target.name)}.bak"
            )

    # camera
    cameras = discover_cameras(root, board_kind=board.kind)
    if camera is None:
        camera = current.camera.uri
        if interactive:
            camera = _pick_camera(console, cameras, camera)
    cam_options = {
        "width": current.camera.width,
        "height": current.camera.height,
        "fps": current.camera.fps,
    }
    probe = None
    if test:
        while True:
            with console.status(f"reading a test frame from {escape(camera)} ..."):
                probe = probe_camera(camera, **cam_options)
            if probe.ok:
                _show_probe(console, probe)
                break
            assert probe.error is not None
            if interactive:
                console.print(f"[red]camera failed[/]: {escape(str(probe.error))}")
                camera = _pick_camera(console, cameras, camera)
                continue
            if camera_given:
                raise probe.error
            # a first boot with whatever is plugged in: keep "auto", let `zeke doctor` tell
            console.print(
                f"[yellow]camera {escape(camera)} gives no frame[/]: {escape(str(probe.error))}; "
                "the config keeps it, `zeke doctor` will say what is wrong"
            )
            probe = None
            break

    # vision: a first run with the defaults, so the choice is an informed one
    if threads is None:
        threads = _recommended_threads(board) if fresh else current.vision.threads
    frame = probe.frame if (test and probe is not None) else None
    tested: tuple[str, str] | None = None

    def try_vision(det: str, back: str) -> None:
        nonlocal tested
        if frame is not None and tested != (det, back):
            vision = current.vision
            _run_vision(console, frame, det, back, threads, vision.min_score, vision.models_dir)
            tested = (det, back)

    default_detector = board.recommended_detector() if fresh else current.vision.detector
    default_backend = "auto" if fresh else current.vision.backend
    if interactive:
        try_vision(detector or default_detector, backend or default_backend)
    if detector is None:
        detector = default_detector
        if interactive:
            console.print("[dim]short: faces within ~2 m · full: up to ~5 m · ssd: Edge TPU[/]")
            detector = _choose(console, "Detector", DETECTORS, detector)
    if backend is None:
        backend = default_backend
        if interactive:
            backend = _choose(console, "Backend", BACKENDS, backend)
    try_vision(detector, backend)  # what will run, if that is not what was just shown

    # name
    if name is None:
        name = current.device.name
        if interactive:
            name = Prompt.ask("Device name", default=name, console=console)

    data = current.model_dump()
    data["camera"]["uri"] = camera
    data["vision"].update(detector=detector, backend=backend, threads=threads)
    data["device"]["name"] = name
    try:
        updated = ZekeConfig.model_validate(data)
    except ValidationError as err:
        raise validation_error(err, "zeke setup", hint="check the values given to setup") from None

    # system steps
    account = user or default_user()
    changes = system_changes(root, account, board)

    if dry_run:
        console.print(f"[bold]would write {escape(str(target))}[/]:")
        console.print(to_toml(updated), markup=False)
        if changes:
            console.print("[bold]would change the system[/]:")
            for change in changes:
                console.print(f"  {change.describe()}", markup=False)
        else:
            console.print("system: nothing to change (udev rules and groups already in place)")
        return

    existed = target.exists()
    written = save_config(updated, target)
    backup = written.with_name(written.name + ".bak")
    kept = f" (previous kept as {backup})" if existed else ""
    console.print(f"[green]wrote[/] {escape(str(written) + kept)}")

    if not changes:
        console.print("system: udev rules and groups already in place")
        return
    console.print("[bold]system steps[/]:")
    for change in changes:
        console.print(f"  {change.describe()}", markup=False)
    apply = system
    if apply is None:
        apply = interactive and Confirm.ask("Apply these system changes?", console=console)
    if not apply:
        console.print("[dim]not applied; run `sudo zeke setup --yes --system` later[/]")
        return
    if os.geteuid() != 0:
        raise ZekeError(
            "the system changes need root; the config is written",
            hint="run `sudo zeke setup --yes --system` (same options) for them",
        )
    for change in changes:
        change.apply()
        console.print(f"  [green]done[/]: {escape(change.what)}")
    if any(c.what.startswith("add ") for c in changes):
        console.print(f"[dim]{account} gets the new groups at the next login[/]")


def register(app: typer.Typer) -> None:
    app.command("setup", help=SETUP_HELP, epilog=SETUP_EPILOG)(setup)
