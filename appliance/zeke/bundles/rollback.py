"""Roll back to the previous bundle (or a named one), by the operator or by the watchdog.

The target is verified again (signature and every hash) before the switch: a rollback never
activates a bundle that was damaged on disk. The bundle rolled back from is marked
``rolled-back`` so it is not picked as anybody's "previous" again; reinstalling it clears that.
"""

from __future__ import annotations

from zeke.bundles.errors import BundleError
from zeke.bundles.install import crash_point
from zeke.bundles.keys import TrustedKeys
from zeke.bundles.store import PendingSwitch, RollbackRecord, Store, StoreState
from zeke.bundles.verify import verify_installed


def _next_previous(state: StoreState, target: str, leaving: str | None) -> str | None:
    """The most recently activated good bundle other than the new active and the one left."""
    candidates = [
        r
        for r in state.bundles.values()
        if r.version not in (target, leaving) and r.status == "ready" and r.activated_at
    ]
    candidates.sort(key=lambda r: r.activated_at or 0.0, reverse=True)
    return candidates[0].version if candidates else None


def rollback_locked(
    store: Store,
    state: StoreState,
    trusted: TrustedKeys,
    to: str | None = None,
    reason: str = "requested by the operator",
    automatic: bool = False,
) -> RollbackRecord:
    """Switch back while the caller holds the store lock and has reconciled ``state``."""
    if state.active is None:
        raise BundleError(
            "no bundle is active, so there is nothing to roll back",
            hint="the factory models inside the zeke package are in use",
        )
    target = to or state.previous
    if target is None:
        raise BundleError(
            f"there is no previous bundle to roll back to (active: {state.active})",
            hint="install another bundle with `zeke models install`, or name one with --to",
        )
    if target == state.active:
        raise BundleError(
            f"bundle {target} is already the active one", hint="see `zeke models list`"
        )
    if target not in state.bundles:
        installed = ", ".join(sorted(state.bundles)) or "none"
        raise BundleError(
            f"bundle {target} is not installed (installed: {installed})",
            hint="see `zeke models list`",
        )
    try:
        verify_installed(store.version_dir(target), trusted)
    except BundleError as err:
        raise BundleError(
            f"cannot roll back to {target}: {err.message}; {state.active} stays active",
            hint="install a good bundle with `zeke models install`",
        ) from None
    pending = PendingSwitch(
        op="rollback",
        target=target,
        previous=_next_previous(state, target, state.active),
        from_version=state.active,
        reason=reason,
        automatic=automatic,
    )
    store.switch(state, pending, hook=crash_point)
    return state.rollbacks[-1]


def rollback(
    *,
    store: Store | None = None,
    trusted: TrustedKeys | None = None,
    to: str | None = None,
    reason: str = "requested by the operator",
) -> RollbackRecord:
    """Make the previous bundle (or ``to``) active again."""
    store = store or Store()
    trusted = trusted if trusted is not None else TrustedKeys.load()
    if not store.root.is_dir():
        raise BundleError(
            f"no bundles are installed ({store.root} does not exist)",
            hint="the factory models inside the zeke package are in use",
        )
    with store.lock():
        state = store.reconcile()
        return rollback_locked(store, state, trusted, to, reason)
