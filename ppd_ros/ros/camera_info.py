"""sensor_msgs/CameraInfo <-> ppd_ros.intrinsics.CameraIntrinsics, validated (CameraInfoMismatch)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, RegionOfInterest as RoiMsg
from std_msgs.msg import Header

from ..errors import CameraInfoMismatch
from ..intrinsics import CameraIntrinsics, RegionOfInterest
from .buffers import MAX_SIDE


def _uint(msg: Any, name: str, upper: int) -> int:
    value = getattr(msg, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= upper:
        raise CameraInfoMismatch(f"CameraInfo.{name} must be an integer in 0..{upper}, got {value!r}")
    return int(value)


def _floats(value: Any, name: str, size: int | None) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CameraInfoMismatch(f"CameraInfo.{name} must be numbers, got {type(value).__name__}: {exc}") from exc
    if size is not None and a.size != size:
        raise CameraInfoMismatch(f"CameraInfo.{name} has {a.size} values, expected {size}")
    if not np.all(np.isfinite(a)):
        raise CameraInfoMismatch(f"CameraInfo.{name} has non-finite values: {a.tolist()}")
    return a


def camera_info_to_intrinsics(msg: CameraInfo, *, allow_uncalibrated: bool = True) -> CameraIntrinsics:
    """Validated CameraInfo -> CameraIntrinsics (CameraInfoMismatch on anything unusable).

    Checks: width/height in 1..MAX_SIDE; k 9, p 12, r 9 finite values; fx, fy > 0 in K and P
    (all-zero K = uncalibrated camera: accepted only with ``allow_uncalibrated``, then P must be all
    zero too); an all-zero P with a valid K becomes [K | 0]; binning 0..MAX_SIDE; the ROI inside the
    sensor. R is not kept (the published depth is of the rectified image).
    """
    w, h = _uint(msg, "width", MAX_SIDE), _uint(msg, "height", MAX_SIDE)
    if w < 1 or h < 1:
        raise CameraInfoMismatch(f"CameraInfo size is {w}x{h}; expected width and height >= 1")
    k = _floats(msg.k, "k", 9).reshape(3, 3)
    p = _floats(msg.p, "p", 12).reshape(3, 4)
    _floats(msg.r, "r", 9)
    d = _floats(msg.d, "d", None)
    model = msg.distortion_model if isinstance(msg.distortion_model, str) else ""
    if not k.any():
        if not allow_uncalibrated:
            raise CameraInfoMismatch("CameraInfo K is all zeros (uncalibrated camera); a calibration is required")
        if p.any():
            raise CameraInfoMismatch(f"CameraInfo K is all zeros but P is not: P = {p.tolist()}")
    else:
        if not (k[0, 0] > 0 and k[1, 1] > 0 and k[2, 2] == 1.0):
            raise CameraInfoMismatch(f"CameraInfo K needs fx > 0, fy > 0 and K[2][2] = 1, got K = {k.tolist()}")
        if not p.any():
            p = np.hstack([k, np.zeros((3, 1))])
        elif not (p[0, 0] > 0 and p[1, 1] > 0 and p[2, 2] == 1.0):
            raise CameraInfoMismatch(f"CameraInfo P needs fx > 0, fy > 0 and P[2][2] = 1, got P = {p.tolist()}")
    bx, by = _uint(msg, "binning_x", MAX_SIDE), _uint(msg, "binning_y", MAX_SIDE)
    r = msg.roi
    roi = RegionOfInterest(_uint(r, "x_offset", MAX_SIDE), _uint(r, "y_offset", MAX_SIDE),
                           _uint(r, "width", MAX_SIDE), _uint(r, "height", MAX_SIDE), bool(r.do_rectify))
    if not roi.is_full and (roi.width < 1 or roi.height < 1 or roi.x_offset + roi.width > w
                            or roi.y_offset + roi.height > h):
        raise CameraInfoMismatch(f"CameraInfo roi {roi.width}x{roi.height}+{roi.x_offset}+{roi.y_offset} "
                                 f"does not fit inside the {w}x{h} sensor")
    intr = CameraIntrinsics(w, h, k, p, d, model, bx, by, roi)
    iw, ih = intr.image_size
    if iw < 1 or ih < 1:
        raise CameraInfoMismatch(f"CameraInfo binning {bx}x{by} leaves a {iw}x{ih} image")
    return intr


def intrinsics_to_camera_info(intr: CameraIntrinsics, header: Header | None = None) -> CameraInfo:
    """CameraIntrinsics -> CameraInfo (R = identity; the ``header`` is used as given)."""
    if not isinstance(intr, CameraIntrinsics):
        raise CameraInfoMismatch(f"expected a CameraIntrinsics, got {type(intr).__name__}")
    if not (1 <= intr.width <= MAX_SIDE and 1 <= intr.height <= MAX_SIDE):
        raise CameraInfoMismatch(f"intrinsics size {intr.width}x{intr.height} is outside 1..{MAX_SIDE}")
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(intr.width), int(intr.height)
    msg.distortion_model = intr.distortion_model
    msg.d = [float(x) for x in intr.D]
    msg.k = intr.K.reshape(-1).astype(np.float64)
    msg.r = np.eye(3).reshape(-1)
    msg.p = intr.P.reshape(-1).astype(np.float64)
    msg.binning_x, msg.binning_y = int(intr.binning_x), int(intr.binning_y)
    msg.roi = RoiMsg(x_offset=intr.roi.x_offset, y_offset=intr.roi.y_offset, width=intr.roi.width,
                     height=intr.roi.height, do_rectify=intr.roi.do_rectify)
    return msg


def check_camera_info_matches(info: CameraInfo | CameraIntrinsics, width: int, height: int) -> CameraIntrinsics:
    """Validate ``info`` and that it describes ``width`` x ``height`` images (after ROI and binning).

    Returns the CameraIntrinsics; raises CameraInfoMismatch naming both sizes otherwise.
    """
    intr = info if isinstance(info, CameraIntrinsics) else camera_info_to_intrinsics(info)
    intr.check_image(int(width), int(height))
    return intr


def fov_ok(intr: CameraIntrinsics) -> bool:
    """True when the horizontal field of view is physically plausible (0.1 .. 179.9 degrees)."""
    if not intr.is_calibrated:
        return False
    fov = math.degrees(2 * math.atan(intr.image_size[0] / (2 * intr.fx)))
    return 0.1 < fov < 179.9
