"""``zeke config``: show, validate, get and set the configuration; say which file is in use.

Search order: ``--config PATH``, ``$ZEKE_CONFIG``, ``$XDG_CONFIG_HOME/zeke/zeke.toml``,
``/etc/zeke/zeke.toml``, else the defaults. ``set`` writes atomically and keeps the previous
file as ``zeke.toml.bak``; an invalid value is refused and the file stays as it was.

JSON contracts (``--json``)::

    zeke config path --json
        {"path": str|null, "origin": "--config"|"ZEKE_CONFIG"|"user"|"system"|"defaults",
         "exists": bool, "write_path": str, "searched": [str]}
    zeke config show --json
        {"path": str|null, "origin": str, "config": {section: {key: value}}}
    zeke config validate --json
        {"path": str|null, "valid": bool, "error": str|null}     # exit 5 when not valid
    zeke config get KEY --json
        {"key": str, "value": any}

Errors (unreadable or invalid config, unknown key) exit with status 5; ``validate --json``
prints its document on stdout and the error line on stderr as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from zeke.errors import ConfigError

CONFIG_HELP = "Show, check and change the configuration (zeke.toml)."

CONFIG_EPILOG = (
    "Search order: --config, $ZEKE_CONFIG, $XDG_CONFIG_HOME/zeke/zeke.toml, /etc/zeke/zeke.toml, "
    "defaults. --json prints: path: {path, origin, exists, write_path, searched}; show: {path, "
    "origin, config: {section: {key: value}}}; validate: {path, valid, error} (exit 5 when "
    "invalid); get: {key, value}. Errors exit with status 5."
)

config_app = typer.Typer(
    help=CONFIG_HELP,
    epilog=CONFIG_EPILOG,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

CONFIG_OPTION = typer.Option(None, "--config", help="Config file (default: the usual search).")


def _echo_json(doc: dict) -> None:
    """Strict JSON: the config refuses inf and nan, so ``Infinity`` can never be printed."""
    typer.echo(json.dumps(doc, indent=2, default=str, allow_nan=False))


@config_app.command("path")
def path_cmd(
    config: Path = CONFIG_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print JSON (contract: `zeke config -h`)."),
) -> None:
    """Which config file is in use, where writes go, and the search order."""
    from zeke.config import exists, locate

    loc = locate(config)
    doc = {
        "path": str(loc.path) if loc.path else None,
        "origin": loc.origin,
        "exists": bool(loc.path and exists(loc.path)),
        "write_path": str(loc.write_path),
        "searched": [str(p) for p in loc.searched],
    }
    if json_out:
        _echo_json(doc)
        return
    if loc.path is None:
        typer.echo("in use: the defaults (no config file found)")
    else:
        state = "" if doc["exists"] else " (does not exist yet)"
        typer.echo(f"in use: {loc.path} ({loc.origin}){state}")
    typer.echo(f"writes go to: {loc.write_path}")
    typer.echo("search order: --config, $ZEKE_CONFIG, " + ", ".join(doc["searched"]))


@config_app.command("show")
def show_cmd(
    config: Path = CONFIG_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print JSON (contract: `zeke config -h`)."),
) -> None:
    """Print the configuration in effect: every key, with defaults filled in."""
    from zeke.config import load_config, to_toml

    loaded = load_config(config)
    if json_out:
        _echo_json(
            {
                "path": str(loaded.path) if loaded.path else None,
                "origin": loaded.location.origin,
                "config": loaded.config.model_dump(mode="json"),
            }
        )
        return
    where = str(loaded.path) if loaded.path else "defaults (no config file)"
    typer.echo(f"# in effect: {where}")
    typer.echo(to_toml(loaded.config).rstrip())


@config_app.command("validate")
def validate_cmd(
    path: Path = typer.Argument(None, help="File to check (default: the one in use)."),
    config: Path = CONFIG_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print JSON (contract: `zeke config -h`)."),
) -> None:
    """Check a config file: syntax, every key and every value."""
    from zeke.config import load_config

    target = path or config
    try:
        loaded = load_config(target)
    except ConfigError as err:
        if not json_out:
            raise
        from zeke.cli.main import report_error

        where = str(target) if target else None
        _echo_json({"path": where, "valid": False, "error": err.message})
        report_error(err)  # stdout stays the JSON document; people and logs read stderr
        raise typer.Exit(err.exit_code) from None
    where = str(loaded.path) if loaded.path else None
    if json_out:
        _echo_json({"path": where, "valid": True, "error": None})
    else:
        typer.echo(f"ok: {where or 'no config file, the defaults'} is valid")


@config_app.command("get")
def get_cmd(
    key: str = typer.Argument(..., help="SECTION.KEY, e.g. vision.detector"),
    config: Path = CONFIG_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print JSON (contract: `zeke config -h`)."),
) -> None:
    """Print one value of the configuration in effect."""
    from zeke.config import get_value, load_config

    value = get_value(load_config(config).config, key)
    shown = str(value) if isinstance(value, Path) else value
    if json_out:
        _echo_json({"key": key, "value": shown})
    else:
        typer.echo("" if shown is None else str(shown))


@config_app.command("set")
def set_cmd(
    key: str = typer.Argument(..., help="SECTION.KEY, e.g. vision.detector"),
    value: str = typer.Argument(..., help='The new value ("" resets the key to its default).'),
    config: Path = CONFIG_OPTION,
) -> None:
    """Change one key; the file is rewritten atomically and the old one kept as .bak."""
    from zeke.config import get_value, locate, set_value

    target = locate(config).write_path
    updated = set_value(target, key, value)
    typer.echo(f"{key} = {get_value(updated, key)!s}  ({target})")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
