"""``zeke detect``: faces and emotions in still images.

JSON Lines contract (one object per input, in input order)::

    {"source": str, "width": int, "height": int, "detector": "short"|"full"|"ssd",
     "backend": "cpu"|"edgetpu",
     "faces": [{"box": [x0, y0, x1, y1], "score": float,
                "keypoints": {"right_eye": [x, y], "left_eye": [x, y], "nose_tip": [x, y],
                              "mouth": [x, y], "right_ear": [x, y], "left_ear": [x, y]} | null,
                "emotion": str, "emotion_score": float, "emotions": {label: prob}}],
     "timings_ms": {"decode": float, "detect": float, "classify": float, "total": float}}

An input that fails gives ``{"source": str, "error": str}``; the others still run, and the
exit code is 3 when any input failed. Coordinates are source-image pixels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from zeke.errors import InputError, UsageError

DETECT_HELP = "Find faces and their emotions in photos (the bundled sample photos when no PATH)."


def _print_human(console, source: str, result, decode_ms: float, info: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from zeke.inputs import shown

    total = decode_ms + sum(result.timings_ms.values())
    name = escape(shown(source))  # a file name is the user's text, never markup
    console.print(
        f"[bold]{name}[/]  [dim]{result.width}x{result.height} · {len(result.faces)} face(s) · "
        f"{info['detector']} on {info['detect_backend']} · {total:.1f} ms[/]"
    )
    if not result.faces:
        return
    table = Table(expand=False)
    table.add_column("#", justify="right")
    table.add_column("box (x0, y0, x1, y1)")
    table.add_column("score", justify="right")
    table.add_column("emotion")
    table.add_column("p", justify="right")
    for i, face in enumerate(result.faces, 1):
        box = ", ".join(f"{v:.0f}" for v in face.box)
        table.add_row(
            str(i),
            box,
            f"{face.score:.2f}",
            face.emotion or "-",
            "-" if face.emotion_score is None else f"{face.emotion_score:.2f}",
        )
    console.print(table)


def detect(
    paths: list[Path] = typer.Argument(None, help="Image files (JPEG, PNG, ...)."),
    json_lines: bool = typer.Option(False, "--json", help="Print one JSON object per input."),
    detector: str = typer.Option(
        "short", "--detector", help="short | full | ssd (Edge TPU) | auto."
    ),
    min_score: float = typer.Option(0.5, "--min-score", help="Face score threshold, 0..1."),
    backend: str = typer.Option("auto", "--backend", help="auto | cpu | edgetpu."),
    threads: int = typer.Option(1, "--threads", min=1, help="Interpreter threads."),
    models_dir: Path = typer.Option(None, "--models-dir", help="Use the models in this directory."),
) -> None:
    from rich.console import Console
    from rich.markup import escape

    from zeke.resources import sample_photos
    from zeke.vision.imageio import read_image
    from zeke.vision.pipeline import FacePipeline, validate_min_score

    validate_min_score(min_score)
    if not paths:
        paths = sample_photos()
        if not paths:
            raise UsageError(
                "no PATH given and no bundled sample photos found", hint="pass image files"
            )
    console = Console(highlight=False)
    err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    pipeline = FacePipeline.create(
        detector=detector,
        backend=backend,
        threads=threads,
        min_score=min_score,
        models_dir=models_dir,
    )
    info = pipeline.backend_info
    if not json_lines and info["reason"]:
        err_console.print(f"[dim]backend: {info['backend']} ({escape(str(info['reason']))})[/]")
    failed = 0
    for path in paths:
        source = str(path)
        t0 = time.perf_counter()
        try:
            image = read_image(path)
        except InputError as err:
            failed += 1
            if json_lines:
                print(json.dumps({"source": source, "error": err.message}), flush=True)
            else:
                err_console.print(f"[bold red]error:[/] {escape(err.message)}")
                if err.hint:
                    err_console.print(f"[dim]hint:[/] {escape(err.hint)}")
            continue
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = pipeline.process(image)
        if json_lines:
            timings = {"decode": decode_ms, **result.timings_ms}
            timings["total"] = sum(timings.values())
            doc = {
                "source": source,
                "width": result.width,
                "height": result.height,
                "detector": info["detector"],
                "backend": info["detect_backend"],
                "faces": [face.to_dict() for face in result.faces],
                "timings_ms": {k: round(v, 3) for k, v in timings.items()},
            }
            print(json.dumps(doc), flush=True)
        else:
            _print_human(console, source, result, decode_ms, info)
    if failed:
        raise typer.Exit(InputError.exit_code)


def register(app: typer.Typer) -> None:
    app.command("detect", help=DETECT_HELP)(detect)
