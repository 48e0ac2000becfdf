"""The crash watchdog: a pipeline that crashes soon after a switch rolls the models back.

After every install the new bundle is on probation (``state.json`` ``probation``). While it is,
each crash of the pipeline is counted; ``max_crashes`` crashes within ``window`` seconds of the
switch roll back to the previous bundle automatically, recorded as an automatic rollback that
``zeke doctor`` and the UI show (``store.describe_state``). A pipeline that runs the whole
window confirms the bundle and ends its probation.

``supervise`` runs the pipeline as a child process (a crash may be a segfault in a native
delegate, which no in-process handler survives), reports how it ended, restarts it after an
automatic rollback, and restarts it cleanly when another process switches the active bundle.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from zeke.bundles.errors import BundleError
from zeke.bundles.keys import TrustedKeys
from zeke.bundles.rollback import rollback_locked
from zeke.bundles.store import RollbackRecord, Store

DEFAULT_WINDOW = 300.0
DEFAULT_MAX_CRASHES = 2
LOCK_WAIT = 120.0
# Ends that are a stop, not a crash: clean exit, Ctrl-C, SIGTERM from the service manager.
_STOPS = frozenset({0, 130, 143, -signal.SIGINT, -signal.SIGTERM})


def is_crash(returncode: int) -> bool:
    return returncode not in _STOPS


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class ExitReport:
    crashed: bool
    on_probation: bool
    crashes: int = 0
    rolled_back: RollbackRecord | None = None
    rollback_error: str | None = None


def report_exit(
    returncode: int,
    *,
    store: Store | None = None,
    trusted: TrustedKeys | None = None,
    window: float = DEFAULT_WINDOW,
    max_crashes: int = DEFAULT_MAX_CRASHES,
    now: float | None = None,
) -> ExitReport:
    """Record how the pipeline ended; roll back if the bundle on probation crashed too often."""
    store = store or Store()
    crashed = is_crash(returncode)
    if not store.root.is_dir():
        return ExitReport(crashed, on_probation=False)
    now = time.time() if now is None else now
    with store.lock(wait=LOCK_WAIT):
        state = store.reconcile()
        probation = state.probation
        if probation is None or probation.version != state.active:
            return ExitReport(crashed, on_probation=False)
        if now - probation.since > window:
            state.probation = None
            store.write_state(state)
            return ExitReport(crashed, on_probation=False)
        if not crashed:
            return ExitReport(False, True, probation.crashes)
        probation.crashes += 1
        report = ExitReport(True, True, probation.crashes)
        if probation.crashes < max_crashes:
            store.write_state(state)
            return report
        reason = (
            f"the pipeline crashed {probation.crashes} times within "
            f"{now - probation.since:.0f} s of switching to {probation.version} "
            f"(last: {describe_exit(returncode)})"
        )
        trusted = trusted if trusted is not None else TrustedKeys.load()
        try:
            report.rolled_back = rollback_locked(store, state, trusted, None, reason, True)
        except BundleError as err:
            store.write_state(state)
            report.rollback_error = err.message
        return report


def returncode_from_systemd(environ: dict[str, str]) -> int | None:
    """How a unit's main process ended, from the variables systemd gives ExecStopPost.

    ``$EXIT_CODE`` is exited, killed or dumped; ``$EXIT_STATUS`` the status or signal name
    (``SEGV`` or ``SIGSEGV``). Returns a Popen-style code (negative for a signal) or None.
    """
    how, status = environ.get("EXIT_CODE"), environ.get("EXIT_STATUS", "")
    if how == "exited" and status.isdigit():
        return int(status)
    if how in ("killed", "dumped"):
        if status.isdigit():
            return -int(status)
        name = status if status.startswith("SIG") else f"SIG{status}"
        try:
            return -signal.Signals[name]
        except KeyError:
            return None
    return None


def confirm_if_due(store: Store, window: float = DEFAULT_WINDOW, now: float | None = None) -> bool:
    """End the probation of the active bundle once it ran ``window`` seconds; True if ended."""
    now = time.time() if now is None else now
    with store.lock(wait=LOCK_WAIT):
        state = store.reconcile()
        probation = state.probation
        if probation is None or now - probation.since < window:
            return False
        state.probation = None
        store.write_state(state)
        return True


def supervise(
    argv: list[str],
    *,
    store: Store | None = None,
    trusted: TrustedKeys | None = None,
    window: float = DEFAULT_WINDOW,
    max_crashes: int = DEFAULT_MAX_CRASHES,
    poll: float = 0.5,
    notify: Callable[[str], None] = lambda line: None,
) -> int:
    """Run ``argv`` under the watchdog; return its exit status (128+N for signal N)."""
    store = store or Store()
    while True:
        started_on = store.active_version()
        child = subprocess.Popen(argv)
        forwarded = {}

        def forward(signum, _frame, child=child):
            child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            forwarded[signum] = signal.signal(signum, forward)
        switched = False
        try:
            while child.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=poll)
                if child.returncode is not None:
                    break
                if store.active_version() != started_on:
                    switched = True
                    notify(f"active models changed to {store.active_version()}; restarting")
                    child.terminate()
                    try:
                        child.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
                    break
                probation = store.read_state().probation if store.root.is_dir() else None
                if probation is not None and time.time() - probation.since >= window:
                    confirm_if_due(store, window)
        finally:
            for signum, previous in forwarded.items():
                signal.signal(signum, previous)
        if switched:
            continue
        code = child.returncode
        try:
            outcome = report_exit(
                code, store=store, trusted=trusted, window=window, max_crashes=max_crashes
            )
        except BundleError as err:  # e.g. a read-only store: the exit still propagates
            notify(f"cannot record the exit in the model store: {err.message}")
            return code if code >= 0 else 128 - code
        if outcome.rolled_back is not None:
            record = outcome.rolled_back
            notify(
                f"models rolled back automatically from {record.from_version} to "
                f"{record.to_version}: {record.reason}; restarting"
            )
            continue
        if outcome.rollback_error:
            notify(f"automatic rollback failed: {outcome.rollback_error}")
            return code if code >= 0 else 128 - code
        if outcome.crashed and outcome.on_probation:
            notify(
                f"pipeline {describe_exit(code)} ({outcome.crashes} of {max_crashes} crashes "
                "allowed on probation); restarting"
            )
            continue
        return code if code >= 0 else 128 - code
