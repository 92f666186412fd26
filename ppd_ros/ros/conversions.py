"""sensor_msgs Image / CompressedImage / CameraInfo / PointCloud2 <-> numpy: pure, vectorized, typed.

Conventions (REP 117/118, depth_image_proc's DepthTraits):
* an (H, W) array is ``height=H, width=W``; the output header is the caller's (input) header;
* ``32FC1`` depth is metres, NaN = invalid, +Inf = sky / beyond range, -Inf = too close;
* ``16UC1`` depth is millimetres, 0 = invalid (also sky: 16-bit has no "beyond range"),
  saturating at 65535 mm;
* ``step`` row padding and ``is_bigendian`` are honoured on input; output is native-endian with
  ``step = width * bytes_per_pixel``; ``msg.data`` is always an ``array.array('B')`` (the fast path:
  other types cost 30-50 ms per frame in rclpy's setter).
Bad input raises ``UnsupportedEncoding`` (naming the encoding) or ``InputError`` (naming the value
and the expectation); nothing else. ``cv_bridge`` decodes raw images when it is importable (a real
ROS install) after our own validation; the numpy path below is used otherwise and is tested against
cv_bridge where both exist. CameraInfo and PointCloud2 live in ``camera_info.py`` / ``cloud.py``
and are re-exported here.
"""
from __future__ import annotations

import array
import sys
from typing import Any, Final, Literal

import cv2
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ..errors import InputError, UnsupportedEncoding
from .buffers import MAX_SIDE, as_u8, check_size as _check_size
from .camera_info import camera_info_to_intrinsics, check_camera_info_matches, intrinsics_to_camera_info
from .cloud import cloud_to_msg, msg_to_cloud, msg_to_packed_cloud
from .compressed import MAX_COMPRESSED_BYTES, compressed_to_rgb, rgb_to_compressed_msg

__all__ = ["MAX_SIDE", "RGB_ENCODINGS", "DEPTH_ENCODINGS", "image_to_rgb", "compressed_to_rgb",
           "rgb_to_compressed_msg", "depth_to_image_msg", "image_msg_to_depth", "rgb_to_image_msg",
           "camera_info_to_intrinsics", "intrinsics_to_camera_info", "check_camera_info_matches",
           "cloud_to_msg", "msg_to_cloud", "msg_to_packed_cloud", "MAX_COMPRESSED_BYTES", "as_u8"]

#: encoding -> bytes per pixel, for the colour inputs ``image_to_rgb`` accepts
RGB_ENCODINGS: Final[dict[str, int]] = {
    "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2,
    "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2,
}
#: encoding -> bytes per pixel, for depth images
DEPTH_ENCODINGS: Final[dict[str, int]] = {"32FC1": 4, "16UC1": 2}
_UYVY = ("yuv422", "uyvy")  # ROS "yuv422" is UYVY byte order: U0 Y0 V0 Y1
_YUYV = ("yuv422_yuy2", "yuyv")  # Y0 U0 Y1 V0
_BRIDGE_SAFE = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "yuv422_yuy2")

try:  # a real ROS install: use cv_bridge for raw images (after our validation)
    from cv_bridge import CvBridge
    _BRIDGE: Any = CvBridge()
except Exception:  # noqa: BLE001 - absent, or the broken ROS 1 PyPI package
    _BRIDGE = None
HAVE_CV_BRIDGE: Final[bool] = _BRIDGE is not None


def _int_field(msg: Any, name: str) -> int:
    value = getattr(msg, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _encoding(msg: Any) -> str:
    enc = msg.encoding
    if not isinstance(enc, str):
        raise UnsupportedEncoding(f"image encoding must be a string, got {enc!r}")
    return enc


def _rows(msg: Any, bpp: int, encoding: str) -> np.ndarray:
    """Validated (height, width * bpp) uint8 view of ``msg.data`` without the row padding."""
    h, w, step = _int_field(msg, "height"), _int_field(msg, "width"), _int_field(msg, "step")
    _check_size(w, h, f"{encoding} image")
    row = w * bpp
    if step < row:
        raise InputError(f"step {step} is smaller than width {w} x {bpp} bytes per pixel = {row} for {encoding}")
    buf = as_u8(msg.data)
    full, last_unpadded = step * h, step * (h - 1) + row
    if buf.size not in (full, last_unpadded):
        raise InputError(f"{encoding} image {w}x{h} with step {step} needs {full} bytes of data, got {buf.size}")
    if step == row:
        return buf[:full].reshape(h, row)
    return np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1), writeable=False)


def _pixels16(rows: np.ndarray, h: int, w: int, bigendian: bool) -> np.ndarray:
    """(h, w * 2) uint8 rows -> (h, w) native uint16 (a view when the byte order already is native)."""
    dt = np.dtype(">u2" if bigendian else "<u2")
    return np.ascontiguousarray(rows).view(dt).reshape(h, w).astype(dt.newbyteorder("="), copy=False)


# ---------------------------------------------------------------------------------------------
# colour images
def _checked_rows(msg: Image, table: dict[str, int], kind: str) -> tuple[str, np.ndarray, int, int]:
    """(encoding, (H, W*bpp) uint8 rows, H, W) of an Image whose encoding is in ``table``."""
    enc = _encoding(msg)
    bpp = table.get(enc)
    if bpp is None:
        raise UnsupportedEncoding(f"{kind} encoding {enc!r} is not supported; expected one of {sorted(table)}")
    rows = _rows(msg, bpp, enc)
    return enc, rows, rows.shape[0], rows.shape[1] // bpp


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> new (H, W, 3) uint8 RGB array.

    Accepts rgb8, bgr8, rgba8, bgra8 (alpha dropped), mono8 (replicated), mono16 (scaled by
    255/65535, honouring ``is_bigendian``), yuv422/uyvy and yuv422_yuy2/yuyv (BT.601, even width).
    """
    enc, rows, h, w = _checked_rows(msg, RGB_ENCODINGS, "image")
    if enc in _UYVY + _YUYV and w % 2:
        raise InputError(f"{enc} image width {w} must be even (two pixels share U and V)")
    if _BRIDGE is not None and enc in _BRIDGE_SAFE and rows.shape[0] * msg.step == len(msg.data):
        return _bridge_rgb(msg, enc)  # (cv_bridge needs the last row's padding too)
    return _rows_to_rgb(rows, h, w, enc, bool(msg.is_bigendian))


def _rows_to_rgb(rows: np.ndarray, h: int, w: int, enc: str, bigendian: bool) -> np.ndarray:
    """(h, w * bpp) uint8 rows (possibly a strided view) -> new (h, w, 3) uint8 RGB."""
    if enc == "rgb8":
        return np.array(rows.reshape(h, w, 3))
    if enc == "mono16":
        # round(v * 255 / 65535); identical to the integer formula for all 65536 values (tested)
        return cv2.cvtColor(cv2.convertScaleAbs(_pixels16(rows, h, w, bigendian), alpha=255.0 / 65535.0),
                            cv2.COLOR_GRAY2RGB)
    if enc == "mono8":
        return cv2.cvtColor(rows.reshape(h, w), cv2.COLOR_GRAY2RGB)
    if enc in ("bgr8", "rgba8", "bgra8"):
        code = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB}[enc]
        return cv2.cvtColor(rows.reshape(h, w, RGB_ENCODINGS[enc]), code)
    code = cv2.COLOR_YUV2RGB_UYVY if enc in _UYVY else cv2.COLOR_YUV2RGB_YUY2
    return cv2.cvtColor(np.ascontiguousarray(rows).reshape(h, w, 2), code)


def _bridge_rgb(msg: Image, enc: str) -> np.ndarray:
    try:
        out = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8")
    except Exception as exc:  # noqa: BLE001 - CvBridgeError and whatever OpenCV raises
        raise InputError(f"cv_bridge could not convert {enc} image {msg.width}x{msg.height}: {exc}") from exc
    return np.ascontiguousarray(out, dtype=np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 BT.601 luma in [0, 255]."""
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _rgb_to_yuv422(rgb: np.ndarray, order: Literal["uyvy", "yuyv"]) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W * 2) uint8 packed 4:2:2, BT.601 limited range (OpenCV's decoder)."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16.0 + 0.2568 * r + 0.5041 * g + 0.0979 * b
    u = 128.0 - 0.1482 * r - 0.2910 * g + 0.4392 * b
    v = 128.0 + 0.4392 * r - 0.3678 * g - 0.0714 * b
    u2 = (u[:, 0::2] + u[:, 1::2]) * 0.5  # (H, W/2): chroma shared by a pixel pair
    v2 = (v[:, 0::2] + v[:, 1::2]) * 0.5
    q = np.empty((rgb.shape[0], rgb.shape[1] // 2, 4), np.float32)
    if order == "uyvy":
        q[..., 0], q[..., 1], q[..., 2], q[..., 3] = u2, y[:, 0::2], v2, y[:, 1::2]
    else:
        q[..., 0], q[..., 1], q[..., 2], q[..., 3] = y[:, 0::2], u2, y[:, 1::2], v2
    return np.clip(np.rint(q), 0, 255).astype(np.uint8).reshape(rgb.shape[0], -1)


def rgb_to_image_msg(rgb: np.ndarray, header: Header | None = None, encoding: str = "rgb8", *,
                     step: int | None = None, is_bigendian: bool = False) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in ``encoding`` (any of ``RGB_ENCODINGS``).

    ``bgr8`` is what the colourised depth preview publishes. ``step`` > width * bpp pads every row
    with zeros (as some drivers do); ``is_bigendian`` only changes ``mono16``. mono8/mono16 hold
    BT.601 luma; the yuv422 variants are BT.601 limited range with chroma averaged per pixel pair.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise InputError(f"rgb must be an (H, W, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    h, w = a.shape[:2]
    _check_size(w, h, "rgb array")
    bpp = RGB_ENCODINGS.get(encoding)
    if bpp is None:
        raise UnsupportedEncoding(f"cannot write image encoding {encoding!r}; expected one of {sorted(RGB_ENCODINGS)}")
    if encoding == "rgb8":
        px = a
    elif encoding in ("bgr8", "rgba8", "bgra8"):
        code = {"bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA, "bgra8": cv2.COLOR_RGB2BGRA}[encoding]
        px = cv2.cvtColor(np.ascontiguousarray(a), code)  # alpha = 255
    elif encoding == "mono8":
        px = np.clip(np.rint(_luma(a)), 0, 255).astype(np.uint8)
    elif encoding == "mono16":
        px = np.clip(np.rint(_luma(a) * 257.0), 0, 65535).astype(">u2" if is_bigendian else "<u2")
    else:
        if w % 2:
            raise InputError(f"{encoding} needs an even width, got {w}")
        px = _rgb_to_yuv422(a, "uyvy" if encoding in _UYVY else "yuyv")
    big = is_bigendian if encoding == "mono16" else sys.byteorder == "big"
    return _pack(np.ascontiguousarray(px).view(np.uint8).reshape(h, w * bpp), h, w, encoding, bpp, header, step, big)


def _pack(rows: np.ndarray, h: int, w: int, encoding: str, bpp: int, header: Header | None,
          step: int | None, bigendian: bool) -> Image:
    """(H, W * bpp) uint8 rows -> Image with optional zero row padding up to ``step``."""
    row = w * bpp
    step = row if step is None else int(step)
    if step < row:
        raise InputError(f"step {step} is smaller than width {w} x {bpp} bytes per pixel = {row}")
    if step > row:
        padded = np.zeros((h, step), np.uint8)
        padded[:, :row] = rows
        rows = padded
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width, msg.encoding, msg.step = h, w, encoding, step
    msg.is_bigendian = int(bigendian)
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(rows)).cast("B"))  # one copy, the fast setter path
    msg.data = data
    return msg


# ---------------------------------------------------------------------------------------------
# depth images
def depth_to_image_msg(depth_m: np.ndarray, header: Header | None = None,
                       encoding: Literal["32FC1", "16UC1"] = "32FC1") -> Image:
    """(H, W) depth in metres -> sensor_msgs/Image (REP 117/118).

    32FC1: metres; NaN stays NaN (invalid), +Inf stays +Inf (sky / beyond range), -Inf stays
    (too close), finite values <= 0 become NaN. 16UC1: millimetres rounded, finite values above
    65.535 m saturate at 65535, NaN / +-Inf / <= 0 become 0 (invalid), (0, 1 mm) becomes 1 mm.
    """
    d = np.asarray(depth_m)
    if d.ndim != 2 or not np.issubdtype(d.dtype, np.floating):
        # integers are refused: a 16UC1 millimetre array must never be read as metres
        raise InputError(f"depth must be an (H, W) float array in metres, got shape {d.shape} dtype {d.dtype}")
    h, w = d.shape
    _check_size(w, h, "depth array")
    d = d.astype(np.float32, copy=False)
    if encoding == "32FC1":
        out = np.array(d, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            out[(out <= 0.0) & (out > -np.inf)] = np.nan  # NaN compares False: stays NaN; -Inf kept
        return _pack(out.view(np.uint8).reshape(h, w * 4), h, w, "32FC1", 4, header, None, sys.byteorder == "big")
    if encoding == "16UC1":
        with np.errstate(invalid="ignore", over="ignore"):
            bad = ~(d > 0.0) | (d == np.inf)  # NaN, <= 0, +-Inf
            mm = d * np.float32(1000.0)  # float32 is exact enough: 65535 has 1/256 mm resolution
            np.clip(mm, 1.0, 65535.0, out=mm)
            np.rint(mm, out=mm)
            mm[bad] = 0.0
            mm = mm.astype(np.uint16)
        return _pack(mm.view(np.uint8).reshape(h, w * 2), h, w, "16UC1", 2, header, None, sys.byteorder == "big")
    raise UnsupportedEncoding(f"depth encoding {encoding!r} is not supported; expected '32FC1' or '16UC1'")


def image_msg_to_depth(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (32FC1 metres or 16UC1 millimetres) -> new (H, W) float32 metres.

    32FC1 values are returned as they are (NaN, +-Inf included); 16UC1 0 becomes NaN.
    """
    enc, rows, h, w = _checked_rows(msg, DEPTH_ENCODINGS, "depth")
    big = bool(msg.is_bigendian)
    if enc == "32FC1":
        dt = np.dtype(">f4" if big else "<f4")
        return np.ascontiguousarray(rows).view(dt).reshape(h, w).astype(np.float32)
    mm = _pixels16(rows, h, w, big)
    out = mm.astype(np.float32) * np.float32(0.001)
    out[mm == 0] = np.nan
    return out
