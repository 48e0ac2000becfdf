"""Errors of the image builder: one line for the user, a hint, a distinct exit code."""

from __future__ import annotations

from zeke.errors import ZekeError


class ImageBuildError(ZekeError):
    """A build that cannot go on: a bad profile, a missing host tool, a failed stage."""

    exit_code = 10


class ProfileError(ImageBuildError):
    """A profile file that is missing or does not validate."""

    exit_code = 11


class HostToolError(ImageBuildError):
    """A host tool the build needs is missing or too old."""

    exit_code = 12


class StageError(ImageBuildError):
    """A build stage failed; the message names the stage and the log to read."""

    exit_code = 13


class BootTestError(ImageBuildError):
    """The booted image did not reach its expected state in time."""

    exit_code = 14
