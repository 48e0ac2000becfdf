"""The ``zeke`` command: a typer app assembled from one module per command group.

Each module in ``COMMAND_MODULES`` exposes ``register(app)``. Heavy imports (OpenCV, the
interpreter) stay inside the commands so ``zeke --help`` and cold starts stay fast.
"""

from __future__ import annotations

import _signal  # the C module: the handler goes in before ``signal`` imports ``enum``
import _thread
import contextlib
import os
import sys

_interrupted = False
_MAIN_THREAD = _thread.get_ident()  # the thread importing this module; the program's main one


def _interrupted_while_starting(_signum, _frame) -> None:
    """Ctrl-C before the command runs (imports take a second on a small board): exit quietly."""
    raise SystemExit(130)


def _interrupt(_signum, _frame) -> None:
    """Ctrl-C while a command runs: a ``KeyboardInterrupt`` as usual, and remember it.

    A library interrupted inside its own import can turn the interrupt into an ``ImportError``
    (pybind11 modules do), which would surface as a misleading error; ``run`` knows better.
    """
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _replace_handler(old, new) -> None:
    """Swap the SIGINT handler if it is ``old`` (only the main thread may; others leave it)."""
    if _thread.get_ident() == _MAIN_THREAD and _signal.getsignal(_signal.SIGINT) is old:
        with contextlib.suppress(ValueError):  # imported outside the main thread
            _signal.signal(_signal.SIGINT, new)


def _started_as_zeke() -> bool:
    """Whether this process is the ``zeke`` program (not a library user importing the CLI)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "zeke.__main__":
        return True
    return os.path.basename(getattr(main, "__file__", None) or "") == "zeke"


# Installed before the heavy imports below; ``run`` switches to ``_interrupt``.
if _started_as_zeke():
    _replace_handler(_signal.default_int_handler, _interrupted_while_starting)

import importlib  # noqa: E402

import typer  # noqa: E402

from zeke import __version__  # noqa: E402
from zeke.errors import ZekeError  # noqa: E402

COMMAND_MODULES: tuple[str, ...] = (
    "detect",
    "watch",
    "models",
    "mesh",
    "nodes",
    "config",
    "setup",
    "doctor",
)

app = typer.Typer(
    name="zeke",
    help="Private, on-device face and emotion sensing. No frame ever leaves the device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zeke {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Private, on-device face and emotion sensing. No frame ever leaves the device."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"zeke.cli.{_name}").register(app)


def report_error(err: ZekeError) -> None:
    """Print a user-fixable error as one red line (plus a hint line) on stderr."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]error:[/] {escape(err.message)}", markup=True)
    if err.hint:
        console.print(f"[dim]hint:[/] {escape(err.hint)}", markup=True)


def run() -> None:
    """Console-script entry point: run the app, turn ``ZekeError`` into a clean exit."""
    try:
        _replace_handler(_interrupted_while_starting, _interrupt)
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except ZekeError as err:
        if _interrupted:  # a consequence of Ctrl-C, not the user's problem
            sys.exit(130)
        report_error(err)
        sys.exit(err.exit_code)
    except Exception:
        if _interrupted:
            sys.exit(130)
        raise


if __name__ == "__main__":
    run()
