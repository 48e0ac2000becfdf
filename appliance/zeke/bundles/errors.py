"""The error every refused bundle and failed store operation raises."""

from __future__ import annotations

from zeke.errors import ModelError


class BundleError(ModelError):
    """A bundle that must not be installed, or a store operation that cannot go ahead."""


class SelfTestFailed(BundleError):
    """The new models did not find the known faces and emotions on the sample photos."""


class StoreBusy(BundleError):
    """Another process holds the model store's lock."""
