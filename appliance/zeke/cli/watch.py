"""``zeke watch``: the live pipeline with a terminal UI, JSON events, or the kiosk screen.

``--json`` prints one event per line (the ``zeke.events.EmotionEvent`` record)::

    {"seq": int, "kind": "enter"|"change"|"update"|"leave", "track_id": int,
     "emotion": str, "score": float, "box": [x0, y0, x1, y1], "ts": float (epoch s),
     "dwell_s": float, "frame_index": int, "device": str, "emotions": {label: prob}}

With ``--summary`` a last JSON line on stderr gives frames, FPS, dropped frames, per-stage
latency p50/p95 and the time to the first event.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import typer

#: Events kept while no reader is connected (the mesh service starting after the pipeline,
#: or restarting): handed to the next reader so those seconds are not lost.
EVENT_BACKLOG = 512

WATCH_HELP = "Watch the camera live: faces, emotions, speed and board health."


def _header(info: dict, source, board_name: str) -> dict:
    from zeke.camera.uri import redact

    return {
        "board": board_name,
        "camera": redact(source.uri),
        "models": Path(info["models_dir"]).name,
        **info,
    }


def _board_name() -> str:
    try:
        from zeke.board import detect_board

        board = detect_board(probe_libraries=False)
        return board.model or board.kind
    except Exception:
        return "unknown board"


def watch(
    camera: str = typer.Option(
        None, "--camera", "-c", help="Camera URI (v4l2://, csi://, file://, rtsp://)."
    ),
    demo: bool = typer.Option(False, "--demo", help="Run on the bundled demo clip."),
    config: Path = typer.Option(None, "--config", help="Config file (default: the usual search)."),
    detector: str = typer.Option(None, "--detector", help="short | full | ssd | auto."),
    backend: str = typer.Option(None, "--backend", help="auto | cpu | edgetpu."),
    threads: int = typer.Option(None, "--threads", min=1, help="Interpreter threads."),
    min_score: float = typer.Option(None, "--min-score", help="Face score threshold, 0..1."),
    frames: int = typer.Option(None, "--frames", min=1, help="Stop after N processed frames."),
    duration: float = typer.Option(None, "--duration", min=0.1, help="Stop after S seconds."),
    json_lines: bool = typer.Option(False, "--json", help="Print events as JSON lines, no UI."),
    summary: bool = typer.Option(
        False, "--summary", help="Print a JSON summary line on stderr at the end."
    ),
    preview: bool = typer.Option(
        False, "--preview", help="Show a small live picture (local screen only)."
    ),
    kiosk: bool = typer.Option(
        False, "--kiosk", help="Full screen on the console, systemd notify and watchdog."
    ),
    pace: bool = typer.Option(None, "--pace/--no-pace", help="Play clips at their own frame rate."),
    loop: bool = typer.Option(
        None, "--loop/--no-loop", help="Restart clips at their end (default with --demo)."
    ),
    events_socket: Path = typer.Option(
        None, "--events-socket", help="Serve events on this Unix socket."
    ),
    no_events_socket: bool = typer.Option(
        False, "--no-events-socket", help="Do not serve the event socket."
    ),
    models_dir: Path = typer.Option(None, "--models-dir", help="Use the models in this directory."),
) -> None:
    from zeke.camera import open_source
    from zeke.events import default_socket_path
    from zeke.live.loop import LiveLoop
    from zeke.live.sinks import JsonLinesSink, SocketSink
    from zeke.track.tracker import Tracker
    from zeke.vision.pipeline import FacePipeline, validate_min_score

    settings = _settings(config)
    vision = settings.get("vision", {})
    cam = settings.get("camera", {})
    detector = detector or vision.get("detector", "short")
    backend = backend or vision.get("backend", "auto")
    threads = threads or vision.get("threads", 1)
    min_score = validate_min_score(
        min_score if min_score is not None else vision.get("min_score", 0.5)
    )
    models_dir = models_dir or vision.get("models_dir")
    uri = "demo" if demo else (camera or cam.get("uri") or "auto")
    if loop is None:  # the demo loops; an explicit --camera plays once; else the config says
        loop = True if demo else (False if camera else bool(cam.get("loop", False)) or kiosk)
    if pace is None:
        pace = bool(cam.get("pace", True))
    device = settings.get("device", {}).get("name", "") or ""

    # Everything that can be wrong is checked before the camera opens; the socket path first,
    # so a path taken by a user's file or by another pipeline is refused before models load.
    server = None
    if not no_events_socket:
        path = events_socket or settings.get("events", {}).get("socket") or default_socket_path()
        server = _start_event_server(Path(path))
    try:
        pipeline = FacePipeline.create(
            detector=detector,
            backend=backend,
            threads=threads,
            min_score=min_score,
            models_dir=models_dir,
        )
        options = {k: cam.get(k) for k in ("width", "height", "fps") if cam.get(k)}
        source = open_source(uri, resilient=True, loop=loop, pace=pace, **options)
        tracker = Tracker(pipeline.labels, device=device)
        sinks = []
        if json_lines:
            sinks.append(JsonLinesSink(sys.stdout))
        if server is not None:
            sinks.append(SocketSink(server))

        watchdog = None
        if kiosk:
            from zeke import sdnotify

            watchdog = sdnotify.Watchdog()
        live_loop = LiveLoop(
            source,
            pipeline,
            tracker,
            sinks,
            max_frames=frames,
            duration=duration,
            keep_image=preview,
            watchdog=watchdog,
            on_ready=_kiosk_ready(source) if kiosk else None,
            lossless=not pace and not source.live,
        )
    except BaseException:
        if server is not None:
            server.close()  # removes only the socket it made
        raise
    signal.signal(signal.SIGTERM, lambda *_: live_loop.stop())
    try:
        if json_lines:
            live_loop.run()
        else:
            _run_with_screen(live_loop, pipeline, source, sinks, preview=preview, kiosk=kiosk)
    except KeyboardInterrupt:
        live_loop.stop()
    finally:
        if kiosk:
            from zeke import sdnotify

            sdnotify.stopping()
        for sink in sinks:
            sink.close()
    if summary:
        doc = live_loop.stats.summary()
        doc["events"] = live_loop.events_total
        if server is not None:
            doc["event_socket"] = server.stats()
        print(json.dumps(doc), file=sys.stderr, flush=True)


def _start_event_server(path: Path):  # type: ignore[no-untyped-def]
    """The event socket, or None (with a warning) where no socket can be made at ``path``.

    A path taken by something zeke did not create, or served by a live process, is an error
    (``SocketPathTaken``) instead: the pipeline must not replace it.
    """
    from zeke.events import EventServer, SocketUnavailable

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    try:
        return EventServer(path, backlog=EVENT_BACKLOG, warn=warn).start()
    except SocketUnavailable as err:
        warn(f"{err.message}; events stay local")
        return None


def _kiosk_ready(source):
    def ready() -> None:
        from zeke import sdnotify

        sdnotify.ready()
        sdnotify.status(f"watching {source.uri}")

    return ready


def _settings(config: Path | None) -> dict:
    """The validated config as plain dicts (empty where no config exists)."""
    try:
        from zeke.config import load_config
    except ImportError:
        return {}
    return load_config(config).config.model_dump(mode="json")


def _run_with_screen(live_loop, pipeline, source, sinks, *, preview: bool, kiosk: bool) -> None:
    from rich.console import Console
    from rich.live import Live

    from zeke.health import HealthMonitor
    from zeke.ui.keys import KeyReader
    from zeke.ui.watch_view import WatchView

    console = Console()
    view = WatchView(
        _header(pipeline.backend_info, source, _board_name()), preview=preview, kiosk=kiosk
    )
    health = HealthMonitor()
    interactive = console.is_terminal
    if not interactive:
        last = [0.0]

        def plain(snapshot) -> None:
            view.update(snapshot)
            now = time.monotonic()
            if now - last[0] >= 1.0:
                last[0] = now
                print(view.plain_line(), flush=True)

        live_loop.on_snapshot = plain
        live_loop.run()
        print(view.plain_line(), flush=True)
        return

    keys = KeyReader({"q": live_loop.stop, "p": live_loop.toggle_pause, "\x03": live_loop.stop})
    last_draw = [0.0]
    with Live(
        view.render(), console=console, screen=True, auto_refresh=False, transient=not kiosk
    ) as live:

        def draw(snapshot) -> None:
            view.update(snapshot)
            now = time.monotonic()
            if now - last_draw[0] < 0.1:
                return
            last_draw[0] = now
            if preview and snapshot.image is not None:
                from zeke.ui.preview import render_preview

                width = max(32, min(96, console.width // 2))
                view.preview_lines = render_preview(
                    snapshot.image, [t.box for t in snapshot.tracker.visible], width
                )
            view.health = health.sample()
            view.sink_states = {s.name: s.state() for s in sinks}
            live.update(view.render(), refresh=True)

        live_loop.on_snapshot = draw
        keys.start()
        try:
            live_loop.run()
        finally:
            keys.stop()
            health.close()


def register(app: typer.Typer) -> None:
    app.command("watch", help=WATCH_HELP)(watch)
