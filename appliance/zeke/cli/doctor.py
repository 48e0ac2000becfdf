"""``zeke doctor``: what is wrong with this board, each problem with its fix in one line.

Checks: Python version, config, board, camera present and readable, permissions (device
nodes and groups), model files verified, inference backend (Edge TPU found / delegate loads
/ CPU fallback), disk space, clock, optional extras. Each is ``pass``, ``warn`` or ``fail``;
the exit code is 1 when any check fails, else 0.

JSON contract (``--json``)::

    {"ok": bool,                                   # no check failed
     "summary": {"pass": int, "warn": int, "fail": int},
     "board": null | {"kind": str, "model": str, "arch": str, "os": str, "details": {...},
               "edgetpus": [{"bus": "pcie"|"usb", "location": str, "state": str,
                             "accessible": bool|null}],
               "libedgetpu": bool|null, "libedgetpu_error": str|null,
               "plan": {"detector": str, "emotion": str, "reason": str}},
     "checks": [{"id": "python"|"config"|"board"|"camera"|"permissions"|"models"|
                       "backend"|"disk"|"clock"|"mesh"|"extras",
                 "title": str, "status": "pass"|"warn"|"fail",
                 "detail": str, "fix": str|null}]}       # in that order
"""

from __future__ import annotations

import datetime as dt
import grp
import importlib.util
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

DOCTOR_HELP = "Check camera, models, backend, config, permissions, disk and clock; say the fix."
DOCTOR_EPILOG = (
    "Exit code 1 when any check fails. --json prints one object: "
    '{"ok": bool, "summary": {"pass": n, "warn": n, "fail": n}, "board": {kind, model, arch, '
    'os, details, edgetpus, libedgetpu, plan}, "checks": [{"id", "title", "status": '
    '"pass"|"warn"|"fail", "detail", "fix"}]} with check ids python, config, board, camera, '
    "permissions, models, backend, disk, clock, extras, in that order."
)

#: a clock before this date has not been set (no RTC, no network yet): TLS and logs break
CLOCK_FLOOR = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
DISK_FAIL_MB = 50
DISK_WARN_MB = 200
PYTHON_MIN = (3, 10)


@dataclass
class Check:
    id: str
    title: str
    status: str  # "pass", "warn", "fail"
    detail: str
    fix: str | None = None


class Doctor:
    """Runs the checks in order; later checks use what earlier ones found."""

    def __init__(self, config_path: Path | None, camera: str | None, root: Path, timeout: float):
        self.config_path = config_path
        self.camera_override = camera
        self.root = root
        self.live = root.resolve() == Path("/")
        self.timeout = timeout
        self.config = None
        self.board = None
        self.frame = None
        self.camera_info: dict = {}
        self.camera_kind: str | None = None
        self.checks: list[Check] = []

    def add(self, id: str, title: str, status: str, detail: str, fix: str | None = None) -> None:
        self.checks.append(Check(id, title, status, detail, fix))

    def run(self) -> list[Check]:
        for step in (
            self.check_python,
            self.check_config,
            self.check_board,
            self.check_camera,
            self.check_permissions,
            self.check_models,
            self.check_backend,
            self.check_disk,
            self.check_clock,
            self.check_mesh,
            self.check_extras,
        ):
            try:
                step()
            except Exception as err:  # a broken check is a finding, not a crash of the doctor
                name = step.__name__.removeprefix("check_")
                self.add(
                    name,
                    name,
                    "fail",
                    f"the check itself failed: {type(err).__name__}: {err}",
                    "run `zeke doctor --json` and report the output",
                )
        return self.checks

    # -- the checks --------------------------------------------------------------------------
    def check_python(self) -> None:
        version = ".".join(map(str, sys.version_info[:3]))
        if sys.version_info[:2] >= PYTHON_MIN:
            self.add("python", "Python", "pass", f"Python {version} ({sys.executable})")
        else:
            need = ".".join(map(str, PYTHON_MIN))
            self.add(
                "python",
                "Python",
                "fail",
                f"Python {version} is older than {need}",
                f"install Python {need} or newer and recreate the venv",
            )

    def check_config(self) -> None:
        from zeke.config import ZekeConfig, load_config
        from zeke.errors import ZekeError

        try:
            loaded = load_config(self.config_path)
        except ZekeError as err:
            self.config = ZekeConfig()
            self.add(
                "config",
                "config",
                "fail",
                err.message,
                "fix the file (`zeke config validate` says where) or run `zeke setup`",
            )
            return
        self.config = loaded.config
        if loaded.path is None:
            self.add(
                "config",
                "config",
                "warn",
                "no config file; the defaults are in use",
                "run `zeke setup` to choose the camera, detector and backend",
            )
        else:
            self.add(
                "config", "config", "pass", f"{loaded.path} is valid ({loaded.location.origin})"
            )

    def check_board(self) -> None:
        from zeke.board import detect_board

        self.board = detect_board(self.root)
        plan = self.board.plan()
        self.add("board", "board", "pass", f"{self.board.summary()}; detector: {plan['detector']}")

    def check_camera(self) -> None:
        from zeke.camera import resolve_uri
        from zeke.camera.discovery import discover_cameras
        from zeke.camera.probe import probe_camera
        from zeke.errors import ZekeError

        cam = self.config.camera
        uri = self.camera_override or cam.uri
        cameras = discover_cameras(self.root, board_kind=self.board.kind)
        found = ", ".join(c.best_uri for c in cameras) or "none"
        try:
            resolved = resolve_uri(uri, root=self.root, board_kind=self.board.kind)
        except ZekeError as err:
            self.add("camera", "camera", "fail", err.message, err.hint)
            return
        from zeke.camera.uri import parse_uri

        self.camera_kind = parse_uri(resolved).kind
        if not self.live:
            status = "pass" if cameras else "warn"
            self.add(
                "camera",
                "camera",
                status,
                f"{uri} -> {resolved}; cameras found: {found} (not opened: inspecting {self.root})",
            )
            return
        probe = probe_camera(
            resolved, timeout_s=self.timeout, width=cam.width, height=cam.height, fps=cam.fps
        )
        if not probe.ok:
            err = probe.error
            self.add(
                "camera",
                "camera",
                "fail",
                f"{uri}: {err.message if err else 'no frame'}",
                err.hint if err and err.hint else "`zeke setup` lists the cameras found",
            )
            return
        self.frame = probe.frame
        self.camera_info = probe.info
        info = probe.info
        size = f"{info.get('width')}x{info.get('height')}"
        detail = (
            f"{info.get('uri')} ({info.get('kind')}, {size}) gives frames, "
            f"{probe.read_ms:.1f} ms per read"
        )
        if uri == "auto" and not cameras:
            self.add(
                "camera",
                "camera",
                "warn",
                f"no camera found; the demo clip stands in ({detail})",
                "plug in a camera (USB or CSI), then `zeke setup`",
            )
        else:
            self.add("camera", "camera", "pass", detail)

    def check_permissions(self) -> None:
        problems, notes = [], []
        user = pwd.getpwuid(os.geteuid()).pw_name
        if not self.live:
            self.add("permissions", "permissions", "pass", f"not checked: inspecting {self.root}")
            return
        device = self.camera_info.get("device") if self.camera_info.get("kind") == "v4l2" else None
        if device and not os.access(device, os.R_OK | os.W_OK):
            problems.append(f"cannot open {device}")
        for tpu in self.board.edgetpus:
            if tpu.accessible is False:
                problems.append(f"cannot open the Edge TPU ({tpu.location})")
        if os.geteuid() == 0:
            notes.append("running as root")
        else:
            member = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
            member.add(grp.getgrgid(os.getegid()).gr_name)
            needed = {
                "video": "cameras",
                "plugdev": "the USB Edge TPU",
                "dialout": "Particle nodes",
            }
            missing = [f"{g} ({why})" for g, why in needed.items() if g not in member]
            if missing:
                notes.append(f"{user} is not in: {', '.join(missing)}")
        fix = "run `sudo zeke setup --yes --system` (udev rules and groups), then log in again"
        if problems:
            self.add("permissions", "permissions", "fail", "; ".join(problems + notes), fix)
        elif any("not in" in n for n in notes):
            self.add("permissions", "permissions", "warn", "; ".join(notes), fix)
        else:
            self.add("permissions", "permissions", "pass", "; ".join(notes) or "devices accessible")

    def check_models(self) -> None:
        from zeke.errors import ZekeError

        try:
            from zeke.vision.models import models_dir, verify_all

            directory = models_dir(self.config.vision.models_dir)
            results = verify_all(self.config.vision.models_dir)
        except ZekeError as err:
            self.add("models", "models", "fail", err.message, err.hint)
            return
        bad = [f"{name}: {message}" for name, ok, message in results if not ok]
        if bad:
            self.add(
                "models",
                "models",
                "fail",
                "; ".join(bad),
                "reinstall the models (`zeke models rollback`, or reinstall zeke)",
            )
        elif not results:
            self.add(
                "models",
                "models",
                "fail",
                f"no models listed in {directory}",
                "reinstall zeke with its models",
            )
        elif notice := self._rollback_notice():
            self.add(
                "models",
                "models",
                "warn",
                f"{len(results)} model files sha256-verified in {directory}; {notice}",
                "the previous models run again; install a fixed bundle with "
                "`zeke models install`, see `zeke models list` for what failed",
            )
        else:
            self.add(
                "models",
                "models",
                "pass",
                f"{len(results)} model files sha256-verified in {directory}",
            )

    @staticmethod
    def _rollback_notice() -> str | None:
        """Say so when the crash watchdog switched the models back by itself."""
        from zeke.bundles.store import Store, describe_state

        store = Store()
        if not store.state_path.is_file():
            return None
        try:
            return describe_state(store.read_state())
        except OSError:
            return None

    def check_backend(self) -> None:
        from zeke.errors import ZekeError

        vision = self.config.vision
        try:
            from zeke.vision.pipeline import FacePipeline

            pipeline = FacePipeline.create(
                detector=vision.detector,
                backend=vision.backend,
                threads=vision.threads,
                min_score=vision.min_score,
                models_dir=vision.models_dir,
            )
        except ZekeError as err:
            self.add("backend", "backend", "fail", err.message, err.hint)
            return
        info = pipeline.backend_info
        detail = (
            f"{info.get('detector')} on {info.get('detect_backend', info.get('backend'))}"
            f", emotion on {info.get('classify_backend', 'cpu')}"
        )
        if self.frame is not None:
            pipeline.process(self.frame.image)
            result = pipeline.process(self.frame.image)
            timings = ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items())
            detail += f"; test frame: {len(result.faces)} face(s), {timings}"
        if info.get("reason"):
            detail += f" ({info['reason']})"
        tpu_unused = self.board.has_edgetpu and info.get("backend") != "edgetpu"
        if tpu_unused and vision.backend != "cpu":
            fix = (
                "install the Edge TPU runtime (libedgetpu1-std) and check its permissions"
                if not self.board.edgetpu_usable
                else "see the reason above"
            )
            self.add("backend", "backend", "warn", "Edge TPU present but not used: " + detail, fix)
        else:
            self.add("backend", "backend", "pass", detail)

    def check_disk(self) -> None:
        from zeke.config import locate

        places = {"config": locate(self.config_path).write_path.parent}
        store = Path(os.environ.get("ZEKE_MODEL_STORE", "/var/lib/zeke/models"))
        places["models"] = store
        worst = None
        for label, place in places.items():
            existing = place
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            free_mb = shutil.disk_usage(existing).free // (1024 * 1024)
            if worst is None or free_mb < worst[1]:
                worst = (label, free_mb, existing)
        label, free_mb, where = worst
        detail = f"{free_mb} MB free at {where} ({label})"
        fix = "free some space (journalctl --vacuum-size=50M, apt clean, old model bundles)"
        if free_mb < DISK_FAIL_MB:
            self.add("disk", "disk space", "fail", detail, fix)
        elif free_mb < DISK_WARN_MB:
            self.add("disk", "disk space", "warn", detail, fix)
        else:
            self.add("disk", "disk space", "pass", detail)

    def check_clock(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        shown = now.strftime("%Y-%m-%d %H:%M UTC")
        if now < CLOCK_FLOOR:
            self.add(
                "clock",
                "clock",
                "fail",
                f"the clock says {shown}: it was never set",
                "connect to a network and enable NTP: sudo timedatectl set-ntp true",
            )
            return
        synced = _ntp_synchronized()
        if synced is False:
            self.add(
                "clock",
                "clock",
                "warn",
                f"{shown}, not synchronized by NTP",
                "sudo timedatectl set-ntp true (event times come from this clock)",
            )
        else:
            state = "NTP synchronized" if synced else "NTP state unknown"
            self.add("clock", "clock", "pass", f"{shown} ({state})")

    def check_mesh(self) -> None:
        from zeke.errors import ZekeError
        from zeke.mesh.pairing import PairingStore, default_status_file

        mqtt = self.config.mqtt
        try:
            paired = sorted(PairingStore().load())
        except PermissionError as err:
            self.add("mesh", "mesh", "warn", f"cannot read {err.filename}", "run: sudo zeke doctor")
            return
        except ZekeError as err:
            self.add("mesh", "mesh", "fail", err.message, err.hint)
            return
        if mqtt.enabled and not module_present("paho.mqtt"):
            self.add(
                "mesh", "mesh", "fail", "[mqtt] is enabled but paho-mqtt is not installed",
                "pip install 'zeke[mqtt]' (or set [mqtt] enabled = false)",
            )  # fmt: skip
            return
        if not paired and not mqtt.enabled:
            self.add(
                "mesh", "mesh", "pass",
                "not set up (optional): no gateway paired, MQTT off",
            )  # fmt: skip
            return
        self._mesh_links(default_status_file(), paired, mqtt.enabled)

    def _mesh_links(self, status_path: Path, paired: list[str], mqtt: bool) -> None:
        """What the running forwarder says about each paired gateway and the broker."""
        start = "sudo systemctl enable --now zeke-mesh.service (or run `zeke mesh run`)"
        try:
            age = time.time() - status_path.stat().st_mtime
            doc = json.loads(status_path.read_text())
        except PermissionError:
            self.add("mesh", "mesh", "warn", f"cannot read {status_path}", "run: sudo zeke doctor")
            return
        except (OSError, ValueError):
            self.add("mesh", "mesh", "warn", f"{len(paired)} paired, but the forwarder is not "
                     f"running (no status at {status_path})", start)  # fmt: skip
            return
        if age > 30:
            self.add("mesh", "mesh", "warn", f"the forwarder stopped updating {status_path} "
                     f"{age:.0f} s ago", start)  # fmt: skip
            return
        links = doc.get("gateways", {})
        notes, problems = [], []
        for name in paired:
            link = links.get(name, {})
            state = link.get("state", "not started")
            note = f"{name} {state}"
            if link.get("queued"):
                note += f", {link['queued']} queued"
            if link.get("dropped_oldest"):
                note += f", {link['dropped_oldest']} dropped (queue full)"
            notes.append(note)
            if link.get("auth_failures"):
                problems.append(f"{name} refused our key: pair it again (`zeke mesh pair {name}`)")
            elif state != "connected":
                problems.append(f"is {name} powered and on this network? (`zeke mesh list`)")
        if mqtt:
            broker = doc.get("mqtt", {})
            notes.append("MQTT " + ("connected" if broker.get("connected") else "not connected"))
            if not broker.get("connected"):
                error = broker.get("last_error") or "no connection yet"
                problems.append(f"MQTT: {error}; check [mqtt] host, port, tls and credentials")
        status = "warn" if problems else "pass"
        self.add("mesh", "mesh", status, "; ".join(notes), "; ".join(problems) or None)

    def check_extras(self) -> None:
        present, missing, warn = [], [], []

        def probe(label: str, module: str, relevant: bool, fix: str) -> None:
            if module_present(module):
                present.append(label)
            else:
                missing.append(label)
                if relevant:
                    warn.append((label, fix))

        kind = self.board.kind
        camera_kind = self.camera_info.get("kind") or self.camera_kind
        probe("paho-mqtt (MQTT sink)", "paho.mqtt", False, "pip install 'zeke[mqtt]'")
        probe(
            "picamera2 (Pi CSI cameras)",
            "picamera2",
            kind == "raspberry-pi" and camera_kind == "csi",
            "sudo apt install python3-picamera2; venv with --system-site-packages",
        )
        probe(
            "jetson-stats (Jetson health)", "jtop", kind == "jetson", "pip install 'zeke[jetson]'"
        )
        if self.board.has_edgetpu:
            if self.board.libedgetpu:
                present.append("libedgetpu (Edge TPU runtime)")
            else:
                missing.append("libedgetpu (Edge TPU runtime)")
                warn.append(
                    ("libedgetpu", "sudo apt install libedgetpu1-std (Coral's apt repository)")
                )
        detail = f"present: {', '.join(present) or 'none'}; missing: {', '.join(missing) or 'none'}"
        if warn:
            self.add("extras", "optional extras", "warn", detail, "; ".join(f for _, f in warn))
        else:
            self.add("extras", "optional extras", "pass", detail)


def module_present(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it.

    ``find_spec("paho.mqtt")`` imports the parent ``paho`` first and raises
    ``ModuleNotFoundError`` when that is missing, so a missing parent counts as absent.
    """
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _ntp_synchronized() -> bool | None:
    if Path("/run/systemd/timesync/synchronized").exists():
        return True
    if not shutil.which("timedatectl"):
        return None
    try:
        out = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return {"yes": True, "no": False}.get(value)


STYLE = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]fail[/]"}


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print JSON (the contract is below)."),
    config: Path = typer.Option(None, "--config", help="Config file (default: the usual search)."),
    camera: str = typer.Option(None, "--camera", help="Check this camera instead of the config's."),
    timeout: float = typer.Option(15.0, "--timeout", min=1, help="Seconds to wait for a frame."),
    root: Path = typer.Option(
        Path("/"), "--root", hidden=True, help="Inspect this board tree instead (fixtures)."
    ),
) -> None:
    """Check this board and say, for each problem, how to fix it. Exit 1 if anything fails."""
    started = time.perf_counter()
    medic = Doctor(config, camera, root, timeout)
    checks = medic.run()
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail")}
    ok = counts["fail"] == 0
    if json_out:
        doc = {
            "ok": ok,
            "summary": counts,
            "board": medic.board.to_dict() if medic.board else None,
            "checks": [asdict(c) for c in checks],
        }
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = Console(highlight=False)
        table = Table(title="zeke doctor", expand=False, show_lines=False)
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail / fix", overflow="fold")
        for c in checks:
            text = escape(c.detail)
            if c.fix:
                text += f"\n[dim]fix: {escape(c.fix)}[/]"
            table.add_row(c.title, STYLE[c.status], text)
        console.print(table)
        elapsed = time.perf_counter() - started
        console.print(
            f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed "
            f"({elapsed:.1f} s)"
        )
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor", help=DOCTOR_HELP, epilog=DOCTOR_EPILOG)(doctor)
