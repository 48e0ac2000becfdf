"""Boot an image in qemu and read its serial console until the kiosk's first event.

The image is booted as built: its kernel and initrd (exported next to it by the build),
``root=PARTUUID=…`` from its manifest, a throw-away qcow2 overlay a little larger than the
image (so first boot has room to grow the root partition) and the serial console in a file.
The kernel command line adds ``zeke.boot_report=poweroff``: the image's boot-report unit then
prints the system state and the kiosk's first event on the console and powers off.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image_build.errors import BootTestError, ImageBuildError
from image_build.host import require_tools

REPORT = "zeke-boot-report:"
PANIC = re.compile(r"Kernel panic|end Kernel panic|Attempted to kill init")
KVM_PROBE_SECONDS = 45.0
GROW_BYTES = 1 << 30


@dataclass
class ConsoleWatch:
    """What the boot report has said so far, and when (seconds since qemu started)."""

    path: Path
    offset: int = 0
    buffer: str = ""
    events: dict[str, tuple[float, str]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def poll(self, elapsed: float) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        self.buffer += data.decode("utf-8", errors="replace")
        *complete, self.buffer = self.buffer.split("\n")
        for raw in complete:
            line = raw.rstrip("\r")
            self.lines.append(line)
            if PANIC.search(line):
                self.events.setdefault("panic", (elapsed, line))
            if "Linux version" in line:
                self.events.setdefault("kernel", (elapsed, line))
            if "zeke-firstboot: done" in line:
                self.events.setdefault("firstboot", (elapsed, line))
            if REPORT not in line:
                continue
            text = line.split(REPORT, 1)[1].strip()
            for key in ("system", "first-event", "done", "kiosk"):
                if text.startswith(key + " ") or text == key:
                    self.events.setdefault(key, (elapsed, text[len(key) :].strip()))

    def tail(self, count: int = 15) -> str:
        return "\n".join(self.lines[-count:])


def load_manifest(image: Path) -> tuple[dict[str, Any], Path]:
    if not image.name.endswith(".img.zst"):
        raise ImageBuildError(f"{image.name} is not an .img.zst", hint="pass the built image")
    stem = image.name.removesuffix(".img.zst")
    manifest = image.with_name(f"{stem}.manifest.json")
    if not image.is_file() or not manifest.is_file():
        raise ImageBuildError(
            f"need {image.name} and {manifest.name} side by side in {image.parent}",
            hint="run `python -m image_build build` first",
        )
    data = json.loads(manifest.read_text())
    if data.get("status") != "complete":
        raise ImageBuildError(f"{manifest.name} describes an incomplete build")
    if data["boot"]["method"] != "qemu-direct":
        raise ImageBuildError(
            f"profile {data['profile']} boots with {data['boot']['method']}, not in qemu",
            hint="boot-test takes the qemu-* profiles",
        )
    return data, image.parent / stem


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def qemu_command(
    manifest: dict[str, Any], prefix: Path, disk: Path, console: Path, accel: str
) -> list[str]:
    boot = manifest["boot"]
    qemu = boot["qemu"]
    machine = f"{qemu['machine']},accel={accel}"
    cpu = "host" if accel == "kvm" else qemu["cpu"]
    append = f"{boot['cmdline']} zeke.boot_report=poweroff"
    return [
        qemu["binary"],
        "-machine",
        machine,
        "-cpu",
        cpu,
        "-smp",
        str(qemu["smp"]),
        "-m",
        str(qemu["memory_mib"]),
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{console}",
        "-kernel",
        f"{prefix}.vmlinuz",
        "-initrd",
        f"{prefix}.initrd.img",
        "-append",
        append,
        "-drive",
        f"file={disk},if=virtio,format=qcow2,cache=unsafe",
        "-device",
        "virtio-rng-pci",
        "-nic",
        "none",
    ]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _boot_once(
    manifest: dict[str, Any],
    prefix: Path,
    raw: Path,
    workdir: Path,
    console: Path,
    accel: str,
    timeout: float,
    need_event: bool,
    probe: bool,
) -> dict[str, Any]:
    disk = workdir / f"overlay-{accel}.qcow2"
    disk.unlink(missing_ok=True)
    size = raw.stat().st_size + GROW_BYTES
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            os.fspath(raw),
            os.fspath(disk),
            str(size),
        ],
        check=True,
    )
    console.unlink(missing_ok=True)
    cmd = qemu_command(manifest, prefix, disk, console, accel)
    watch = ConsoleWatch(console)
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while True:
            elapsed = time.monotonic() - start
            watch.poll(elapsed)
            if "panic" in watch.events:
                raise BootTestError(
                    f"kernel panic ({accel}): {watch.events['panic'][1]}",
                    hint=f"console in {console}",
                )
            if probe and "kernel" not in watch.events and elapsed > KVM_PROBE_SECONDS:
                return {"probe_failed": f"no kernel output within {KVM_PROBE_SECONDS:.0f} s"}
            if "done" in watch.events:
                break
            if proc.poll() is not None:
                watch.poll(elapsed)
                if "done" in watch.events:
                    break
                err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                if probe and "kernel" not in watch.events:
                    last = err.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                    return {"probe_failed": f"qemu exited: {last[0][:160]}"}
                raise BootTestError(
                    f"qemu ({accel}) exited with {proc.returncode} before the boot report: "
                    f"{err.strip()[:200] or watch.tail(3)}",
                    hint=f"console in {console}",
                )
            if elapsed > timeout:
                raise BootTestError(
                    f"no boot report within {timeout:.0f} s ({accel}); last console lines:\n"
                    f"{watch.tail()}",
                    hint=f"console in {console}",
                )
            time.sleep(0.5)
        try:
            proc.wait(timeout=180)
            powered_off = True
        except subprocess.TimeoutExpired:
            powered_off = False
    finally:
        _stop(proc)
        disk.unlink(missing_ok=True)
    total = time.monotonic() - start
    state = watch.events.get("system", (0.0, "unknown"))
    result: dict[str, Any] = {
        "accel": accel,
        "system_state": state[1],
        "powered_off": powered_off,
        "seconds": {
            "to_kernel": round(watch.events.get("kernel", (0.0, ""))[0], 1),
            "to_firstboot_done": round(watch.events.get("firstboot", (0.0, ""))[0], 1),
            "to_system_state": round(state[0], 1),
            "total": round(total, 1),
        },
        "console_log": os.fspath(console),
        "first_event": None,
    }
    failed = [
        line.split("failed:", 1)[1].strip() for line in watch.lines if f"{REPORT} failed:" in line
    ]
    if state[1] != "running":
        raise BootTestError(
            f"system state is {state[1]!r} ({accel}), failed units: {', '.join(failed) or 'none'}",
            hint=f"console in {console}",
        )
    if need_event:
        if "first-event" not in watch.events:
            raise BootTestError(
                f"the boot report printed no kiosk event ({accel})", hint=f"console in {console}"
            )
        seconds, text = watch.events["first-event"]
        try:
            result["first_event"] = json.loads(text)
        except json.JSONDecodeError:
            raise BootTestError(
                f"the kiosk's first event is not JSON: {text[:200]}", hint=f"console in {console}"
            ) from None
        result["seconds"]["to_first_event"] = round(seconds, 1)
        result["kiosk_log"] = [
            line.split(f"{REPORT} kiosk:", 1)[1].strip()
            for line in watch.lines
            if f"{REPORT} kiosk:" in line
        ]
    return result


def boot_image(
    image: Path,
    *,
    timeout: float = 900.0,
    accel: str = "auto",
    console_log: Path | None = None,
    ready_only: bool = False,
) -> dict[str, Any]:
    """Boot ``image``; return states and times, or raise BootTestError."""
    manifest, prefix = load_manifest(image)
    has_kiosk = "zeke-kiosk.service" in (manifest.get("units_enabled") or [])
    if not has_kiosk and not ready_only:
        raise BootTestError(
            f"{image.name} enables no zeke-kiosk.service: there is no first event to wait for",
            hint="build from a checkout with systemd/zeke-kiosk.service, or pass --ready-only",
        )
    if accel not in ("auto", "kvm", "tcg"):
        raise ImageBuildError(f"unknown accelerator {accel!r}", hint="use auto, kvm or tcg")
    require_tools(["zstd", "qemu-img", manifest["boot"]["qemu"]["binary"]])
    console = console_log or image.with_name(f"{prefix.name}.console.log")
    workdir = Path(tempfile.mkdtemp(prefix=".boot-", dir=image.parent))
    try:
        raw = workdir / f"{prefix.name}.img"
        subprocess.run(
            ["zstd", "-q", "-d", "-f", "-o", os.fspath(raw), os.fspath(image)], check=True
        )
        attempts = []
        native = manifest["architecture"] == "amd64" and manifest["boot"]["qemu"]["kvm"]
        if accel == "kvm" or (accel == "auto" and native and kvm_usable()):
            result = _boot_once(
                manifest,
                prefix,
                raw,
                workdir,
                console,
                "kvm",
                timeout,
                has_kiosk,
                probe=accel == "auto",
            )
            if not result.get("probe_failed"):
                result["attempts"] = ["kvm"]
                return _finish(result, image)
            attempts.append(f"kvm: {result['probe_failed']}")
        result = _boot_once(
            manifest, prefix, raw, workdir, console, "tcg", timeout, has_kiosk, probe=False
        )
        result["attempts"] = [*attempts, "tcg"]
        return _finish(result, image)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _finish(result: dict[str, Any], image: Path) -> dict[str, Any]:
    result["image"] = image.name
    return result
