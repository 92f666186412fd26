"""Shared checks for message payloads: byte buffers and image sizes (no ROS imports)."""
from __future__ import annotations

from typing import Any, Final

import numpy as np

from ..errors import InputError

#: largest accepted width or height (8K is 7680); bigger headers are rejected before any copy
MAX_SIDE: Final[int] = 16384


def as_u8(data: Any, what: str = "data") -> np.ndarray:
    """Message ``data`` (array.array('B'), bytes, memoryview, list of ints) -> 1-D uint8 array.

    Buffers are viewed without a copy; a list of ints is copied (values must be 0..255).
    """
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    try:
        out = np.asarray(data, dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{what} must be a byte buffer or a list of 0..255 ints, "
                         f"got {type(data).__name__}: {exc}") from exc
    if out.ndim != 1:
        raise InputError(f"{what} must be one-dimensional, got shape {out.shape}")
    return out


def check_size(width: int, height: int, what: str) -> None:
    """InputError unless 1 <= width, height <= MAX_SIDE."""
    if width < 1 or height < 1:
        raise InputError(f"{what} is {width}x{height}: width and height must be >= 1")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(f"{what} is {width}x{height}: larger than {MAX_SIDE} pixels per side")
