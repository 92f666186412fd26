"""The package's exception types: each message names the value and what was expected."""
from __future__ import annotations


class PPDError(Exception):
    """Base class of every error ppd_ros raises on purpose."""


class ConfigError(PPDError, ValueError):
    """An architecture or run-time configuration is inconsistent."""


class CheckpointError(PPDError):
    """A checkpoint file cannot be used (missing, truncated, unsafe, wrong layout)."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint's keys or shapes differ from the model's."""


class InputError(PPDError, ValueError):
    """An input frame cannot be processed (empty, wrong shape, non-finite, extreme aspect)."""


class UnsupportedEncoding(InputError):
    """An image encoding this package does not convert."""


class CameraInfoMismatch(InputError):
    """A CameraInfo that does not fit the image it is paired with."""
