"""``zeke models``: signed model bundles (list, verify, install, rollback, keygen, pack).

The store is ``/var/lib/zeke/models`` (``$ZEKE_MODEL_STORE`` overrides it); trusted public keys
are the ``*.pub`` files in ``/etc/zeke/trusted-keys`` (``$ZEKE_TRUSTED_KEYS`` overrides it).

JSON contracts (``--json``):

``zeke models list --json``::

    {"store": str, "active": str|null, "previous": str|null,
     "bundles": [{"version": str, "name": str, "active": bool, "previous": bool,
                  "status": "ready"|"rolled-back", "verified": bool, "problem": str|null,
                  "key_id": str, "installed_at": float (epoch s), "activated_at": float|null,
                  "disk_bytes": int, "models": [str]}],            # newest first
     "probation": {"version": str, "since": float, "crashes": int}|null,
     "notice": str|null,                  # set after an automatic rollback
     "failed": [{"version": str, "kind": "self-test"|"crash", "reason": str, "at": float}],
     "rollbacks": [{"from_version": str|null, "to_version": str, "reason": str,
                    "automatic": bool, "at": float}]}

``zeke models verify --json``::

    {"ok": true, "path": str, "name": str, "version": str, "key_id": str,
     "min_zeke_version": str, "files": int, "payload_bytes": int, "models": [str]}

``zeke models install --json``::

    {"version": str, "name": str, "key_id": str, "previous": str|null, "activated": bool,
     "bundle_bytes": int, "disk_bytes": int, "removed": [str],
     "timings_s": {"download"?: float, "verify": float, "unpack"?: float,
                   "selftest"?: float, "switch"?: float, "gc"?: float, "total": float},
     "selftest": {"checks": int, "passed": int, "notes": [str]}|null}

``zeke models rollback --json``::

    {"from_version": str|null, "to_version": str, "reason": str, "automatic": false,
     "at": float}

``zeke models pack --json``::

    {"path": str, "name": str, "version": str, "key_id": str, "bytes": int, "sha256": str,
     "files": [str]}

Failures print one error line on stderr and exit with status 4.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

MODELS_HELP = "Signed model bundles: list, verify, install (file or https URL), roll back, pack."

models_app = typer.Typer(
    help=MODELS_HELP,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _t(value) -> str:
    """A path, a version or a reason as printable text, never rich markup."""
    from rich.markup import escape

    from zeke.inputs import shown

    return escape(shown(str(value)))


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _listing() -> dict:
    from zeke.bundles.errors import BundleError
    from zeke.bundles.keys import TrustedKeys
    from zeke.bundles.store import Store, describe_state
    from zeke.bundles.verify import verify_installed

    store = Store()
    state = store.read_state()
    active = store.active_version()
    trusted = TrustedKeys.load()
    bundles = []
    records = sorted(
        state.bundles.values(),
        key=lambda r: (r.activated_at or r.installed_at, r.installed_at),
        reverse=True,
    )
    for record in records:
        problem, models = None, []
        try:
            verified = verify_installed(store.version_dir(record.version), trusted)
            models = sorted(verified.manifest.models)
        except BundleError as err:
            problem = err.message
        bundles.append(
            {
                "version": record.version,
                "name": record.name,
                "active": record.version == active,
                "previous": record.version == state.previous,
                "status": record.status,
                "verified": problem is None,
                "problem": problem,
                "key_id": record.key_id,
                "installed_at": record.installed_at,
                "activated_at": record.activated_at,
                "disk_bytes": record.size_bytes,
                "models": models,
            }
        )
    dump = state.model_dump(mode="json")
    return {
        "store": str(store.root),
        "active": active,
        "previous": state.previous,
        "bundles": bundles,
        "probation": dump["probation"],
        "notice": describe_state(state),
        "failed": dump["failed"],
        "rollbacks": dump["rollbacks"],
    }


@models_app.command("list")
def list_bundles(
    json_out: bool = typer.Option(False, "--json", help="Print the listing as JSON."),
) -> None:
    """List installed bundles, which one is active, and whether each still verifies."""
    listing = _listing()
    if json_out:
        print(json.dumps(listing, indent=2))
        return
    from rich.table import Table

    console = _console()
    if listing["notice"]:
        console.print(f"[bold yellow]{_t(listing['notice'])}[/]")
    if not listing["bundles"]:
        console.print(
            f"no bundles installed in {_t(listing['store'])}; the factory models inside the zeke "
            "package are in use"
        )
        return
    table = Table(title=f"model bundles in {_t(listing['store'])}", title_justify="left")
    for column in ("version", "name", "state", "verified", "activated", "disk", "models"):
        table.add_column(column)
    for b in listing["bundles"]:
        state = "active" if b["active"] else "previous" if b["previous"] else b["status"]
        verified = "[green]yes[/]" if b["verified"] else f"[red]no: {_t(b['problem'])}[/]"
        table.add_row(
            _t(b["version"]),
            _t(b["name"]),
            f"[bold]{_t(state)}[/]" if b["active"] else _t(state),
            verified,
            _when(b["activated_at"]),
            _megabytes(b["disk_bytes"]),
            str(len(b["models"])),
        )
    console.print(table)
    if listing["probation"]:
        p = listing["probation"]
        console.print(
            f"[dim]{_t(p['version'])} is on probation since {_when(p['since'])} "
            f"({p['crashes']} crash(es) so far)[/]"
        )
    for failure in listing["failed"][-3:]:
        console.print(
            f"[dim]failed: {_t(failure['version'])} ({_t(failure['kind'])}, "
            f"{_when(failure['at'])}): {_t(failure['reason'])}[/]"
        )


@models_app.command("verify")
def verify(
    bundle: Path = typer.Argument(None, help="A bundle file (default: the active bundle)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a bundle's signature, every file's sha256 and the zeke version it needs."""
    from zeke.bundles.errors import BundleError
    from zeke.bundles.keys import TrustedKeys
    from zeke.bundles.store import Store
    from zeke.bundles.verify import verify_bundle, verify_installed

    trusted = TrustedKeys.load()
    if bundle is None:
        store = Store()
        directory = store.active_dir()
        if directory is None:
            raise BundleError(
                f"no bundle is active in {store.root}",
                hint="pass a bundle file, or install one with `zeke models install`",
            )
        checked = verify_installed(directory, trusted)
        manifest, key, path = checked.manifest, checked.key_id, directory
    else:
        checked_file = verify_bundle(bundle, trusted)
        manifest, key, path = checked_file.manifest, checked_file.key_id, bundle
    result = {
        "ok": True,
        "path": str(path),
        "name": manifest.name,
        "version": manifest.version,
        "key_id": key,
        "min_zeke_version": manifest.min_zeke_version,
        "files": len(manifest.files),
        "payload_bytes": manifest.payload_bytes,
        "models": sorted(manifest.models),
    }
    if json_out:
        print(json.dumps(result))
        return
    _console().print(
        f"[green]ok[/] {_t(path)}: bundle {_t(manifest.name)} {_t(manifest.version)}, signed by "
        f"trusted key {key}, {len(manifest.files)} files "
        f"({_megabytes(manifest.payload_bytes)}) all match their sha256, "
        f"needs zeke >= {_t(manifest.min_zeke_version)}"
    )


@models_app.command("install")
def install(
    source: str = typer.Argument(..., help="A bundle file or an https:// URL."),
    keep: int = typer.Option(3, "--keep", min=2, help="Bundles to keep installed (>= 2)."),
    ca_file: Path = typer.Option(
        None, "--ca-file", help="Trust this CA certificate (PEM) for the download."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Verify, unpack, self-test and activate a bundle; the old one stays for rollback."""
    from zeke.bundles.download import is_url
    from zeke.bundles.install import install as run_install

    if is_url(source):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (
            TextColumn("downloading"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=_console(stderr=True)) as bar:
            task = bar.add_task("download", total=None)
            result = run_install(
                source,
                keep=keep,
                cafile=ca_file,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    else:
        result = run_install(source, keep=keep)
    report = result.selftest
    selftest = (
        {
            "checks": len(report.checks),
            "passed": sum(c.ok for c in report.checks),
            "notes": report.notes,
        }
        if report
        else None
    )
    timings = {k: round(v, 4) for k, v in result.timings_s.items()}
    if json_out:
        document = {
            "version": result.version,
            "name": result.name,
            "key_id": result.key_id,
            "previous": result.previous,
            "activated": result.activated,
            "bundle_bytes": result.bundle_bytes,
            "disk_bytes": result.disk_bytes,
            "removed": result.removed,
            "timings_s": timings,
            "selftest": selftest,
        }
        print(json.dumps(document))
        return
    console = _console()
    if not result.activated:
        console.print(
            f"bundle {result.name} {result.version} is already active; nothing to do",
            markup=False,
        )
        return
    console.print(
        f"[green]installed[/] {_t(result.name)} {_t(result.version)} (key {result.key_id}) and "
        f"made it active; previous: {_t(result.previous or 'none (factory models)')}"
    )
    if selftest:
        notes = f"; {'; '.join(selftest['notes'])}" if selftest["notes"] else ""
        console.print(
            f"self-test: {selftest['passed']}/{selftest['checks']} checks passed{notes}",
            markup=False,
        )
    steps = " · ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    console.print(f"[dim]{steps} · {_megabytes(result.disk_bytes)} on disk[/]")
    if result.removed:
        console.print(f"[dim]removed old bundles: {_t(', '.join(result.removed))}[/]")


@models_app.command("rollback")
def rollback(
    to: str = typer.Option(None, "--to", help="Roll back to this installed version."),
    json_out: bool = typer.Option(False, "--json", help="Print the rollback record as JSON."),
) -> None:
    """Make the previous bundle (or --to VERSION) active again, after verifying it."""
    from zeke.bundles.rollback import rollback as run_rollback

    record = run_rollback(to=to)
    if json_out:
        print(json.dumps(record.model_dump(mode="json")))
        return
    _console().print(
        f"[green]rolled back[/] from {_t(record.from_version)} to {_t(record.to_version)}; "
        f"{_t(record.to_version)} is active"
    )


@models_app.command("keygen")
def keygen(
    out: Path = typer.Option(Path("."), "--out", help="Directory for the key files."),
    name: str = typer.Option("zeke-models", "--name", help="Base name of the key files."),
) -> None:
    """Make an Ed25519 signing key pair: NAME.key (secret, 0600) and NAME.pub."""
    from zeke.bundles.keys import generate_keypair

    pair = generate_keypair(out, name)
    _console().print(
        f"wrote {pair.private_path} (keep it secret) and {pair.public_path}; key id "
        f"{pair.key_id}\ndevices trust it once {pair.public_path.name} is in "
        "/etc/zeke/trusted-keys/",
        markup=False,
    )


@models_app.command("pack")
def pack(
    directory: Path = typer.Argument(..., help="A models directory (manifest.toml + files)."),
    key: Path = typer.Option(..., "--key", help="The signing key (.key from keygen)."),
    out: Path = typer.Option(None, "--out", help="Bundle file (default: NAME-VERSION.bundle)."),
    version: str = typer.Option(
        None, "--version", help="Bundle version (default: derived from the content)."
    ),
    name: str = typer.Option("zeke-models", "--name", help="Bundle name."),
    min_zeke: str = typer.Option(
        None, "--min-zeke", help="Oldest zeke that may install it (default: this zeke)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pack and sign a models directory into one bundle file (reproducible bytes)."""
    from zeke.bundles.pack import pack_directory

    result = pack_directory(
        directory, key, out, version=version, name=name, min_zeke_version=min_zeke
    )
    if json_out:
        document = {
            "path": str(result.path),
            "name": result.manifest.name,
            "version": result.manifest.version,
            "key_id": result.key_id,
            "bytes": result.size,
            "sha256": result.sha256,
            "files": [f.path for f in result.manifest.files],
        }
        print(json.dumps(document))
        return
    _console().print(
        f"packed {directory} into {result.path}: {result.manifest.name} "
        f"{result.manifest.version}, {len(result.manifest.files)} files, "
        f"{_megabytes(result.size)}, signed by key {result.key_id}, sha256 {result.sha256}",
        markup=False,
    )


@models_app.command(
    "supervise",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def supervise(
    command: list[str] = typer.Argument(..., help="The pipeline command, after --."),
    window: float = typer.Option(
        300.0, "--window", min=1.0, help="Probation after a switch, seconds."
    ),
    max_crashes: int = typer.Option(
        2, "--max-crashes", min=1, help="Crashes on probation that roll the models back."
    ),
) -> None:
    """Run the pipeline under the crash watchdog: roll back new models that crash it.

    Example (systemd ExecStart): zeke models supervise -- zeke watch --kiosk
    """
    from zeke.bundles.watchdog import supervise as run_supervise

    err = _console(stderr=True)
    code = run_supervise(
        command,
        window=window,
        max_crashes=max_crashes,
        notify=lambda line: err.print(f"[yellow]watchdog:[/] {_t(line)}"),
    )
    raise typer.Exit(code)


@models_app.command("watchdog")
def watchdog(
    exit_status: int = typer.Option(
        None, "--exit-status", help="The pipeline's exit status (default: systemd's variables)."
    ),
    window: float = typer.Option(300.0, "--window", min=1.0, help="Probation, seconds."),
    max_crashes: int = typer.Option(2, "--max-crashes", min=1, help="Crashes that roll back."),
) -> None:
    """Record how the pipeline ended; roll back new models that crash it (ExecStopPost).

    In the kiosk unit: ExecStopPost=+/opt/zeke/bin/zeke models watchdog (the "+" runs it as
    root, outside the sandbox; systemd passes $EXIT_CODE and $EXIT_STATUS).
    """
    import os

    from zeke.bundles.watchdog import report_exit, returncode_from_systemd
    from zeke.errors import UsageError

    code = exit_status if exit_status is not None else returncode_from_systemd(dict(os.environ))
    if code is None:
        raise UsageError(
            "no exit status: pass --exit-status, or run from ExecStopPost (which sets "
            "$EXIT_CODE and $EXIT_STATUS)"
        )
    outcome = report_exit(code, window=window, max_crashes=max_crashes)
    console = _console(stderr=True)
    if outcome.rolled_back is not None:
        record = outcome.rolled_back
        console.print(
            f"[yellow]watchdog:[/] models rolled back automatically from "
            f"{_t(record.from_version)} to {_t(record.to_version)}: {_t(record.reason)}"
        )
    elif outcome.rollback_error:
        console.print(f"[red]watchdog:[/] automatic rollback failed: {_t(outcome.rollback_error)}")
    elif outcome.crashed and outcome.on_probation:
        console.print(f"[yellow]watchdog:[/] crash {outcome.crashes} of {max_crashes} on probation")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models", help=MODELS_HELP)
