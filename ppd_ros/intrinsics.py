"""Camera intrinsics: MoGe-2's view-plane uv and focal/shift solver, and a ROS-free camera model.

Conventions. *Normalised* intrinsics (MoGe): pixel (row i, col j) has centre ((j+0.5)/W, (i+0.5)/H),
principal point (0.5, 0.5) for MoGe's predictions, fx/fy in image widths/heights. *Pixel*
intrinsics (OpenCV / ROS CameraInfo): pixel (i, j) has centre (j, i), so a centred principal point
is ((W-1)/2, (H-1)/2). ``focal`` of the solver is the focal length in units of the half image
diagonal: ``f_px = focal * sqrt(W^2 + H^2) / 2``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CameraInfoMismatch, InputError

PixelConvention = Literal["opencv", "official"]


def normalized_view_plane_uv(width: int, height: int, aspect_ratio: float | None = None,
                             dtype: torch.dtype | None = None, device: torch.device | None = None) -> torch.Tensor:
    """(height, width, 2) pixel-centre (u, v) in half-diagonal units of an image of ``aspect_ratio``.

    u spans +-a/sqrt(1+a^2) * (w-1)/w along the width, v spans +-1/sqrt(1+a^2) * (h-1)/h.
    """
    a = width / height if aspect_ratio is None else aspect_ratio
    span_x, span_y = a / (1 + a ** 2) ** 0.5, 1 / (1 + a ** 2) ** 0.5
    # linspace (not an arange formula) to match the official values bit for bit
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height,
                       dtype=dtype, device=device)
    u, v = torch.meshgrid(u, v, indexing="xy")
    return torch.stack([u, v], dim=-1)


def _residual(uv: np.ndarray, xy: np.ndarray, z: np.ndarray, focal: float | None, shift: np.ndarray) -> np.ndarray:
    # float32 inputs + float64 shift -> float64 residuals, interleaved (x, y) per point as official
    xy_proj = xy / (z + shift)[:, None]
    f = (xy_proj * uv).sum() / (xy_proj ** 2).sum() if focal is None else focal
    return (f * xy_proj - uv).ravel()


def solve_focal_shift(uv: np.ndarray, xyz: np.ndarray) -> tuple[np.float32, np.float32]:
    """(N, 2) uv and (N, 3) float32 points -> (shift, focal): LM over s, closed-form f(s)."""
    from scipy.optimize import least_squares

    uv, xy, z = uv.reshape(-1, 2), xyz[..., :2].reshape(-1, 2), xyz[..., 2].reshape(-1)
    sol = least_squares(partial(_residual, uv, xy, z, None), x0=0, ftol=1e-3, method="lm")
    shift = sol.x.squeeze().astype(np.float32)
    xy_proj = xy / (z + shift)[:, None]  # float32 again, as the official recomputation
    return shift, (xy_proj * uv).sum() / (xy_proj ** 2).sum()


def solve_shift(uv: np.ndarray, xyz: np.ndarray, focal: float) -> np.float32:
    """Shift only, for a known focal (half-diagonal units)."""
    from scipy.optimize import least_squares

    uv, xy, z = uv.reshape(-1, 2), xyz[..., :2].reshape(-1, 2), xyz[..., 2].reshape(-1)
    sol = least_squares(partial(_residual, uv, xy, z, focal), x0=0, ftol=1e-3, method="lm")
    return sol.x.squeeze().astype(np.float32)


def recover_focal_shift(points: torch.Tensor, mask: torch.Tensor | None = None, focal: torch.Tensor | None = None,
                        downsample: tuple[int, int] = (64, 64)) -> tuple[torch.Tensor, torch.Tensor]:
    """Focal (half-diagonal units) and z-shift of an affine point map, as MoGe's ``recover_focal_shift``.

    Args:
        points: (B, H, W, 3) point map (z shifted by an unknown s).
        mask: (B, H, W) bool of pixels to use, or None for all.
        focal: (B,) known focal; then only the shift is solved and ``focal`` is returned unchanged.
    Returns:
        focal (B,), shift (B,) in the points' dtype. Fewer than 2 valid samples -> focal 1, shift 0.
    """
    b, h, w, _ = points.shape
    uv = normalized_view_plane_uv(w, h, dtype=points.dtype, device=points.device)
    # legacy 'nearest' (floor(i * H/64)), applied to points, uv and mask alike
    pts = F.interpolate(points.permute(0, 3, 1, 2), downsample, mode="nearest").permute(0, 2, 3, 1)
    uv_lr = F.interpolate(uv.permute(2, 0, 1)[None], downsample, mode="nearest")[0].permute(1, 2, 0).cpu().numpy()
    pts_np = pts.detach().cpu().numpy()
    m_np = None
    if mask is not None:
        m_np = (F.interpolate(mask.to(torch.float32)[:, None], downsample, mode="nearest")[:, 0] > 0).cpu().numpy()
    focals: list[float] = []
    shifts: list[float] = []
    for i in range(b):
        p_i = pts_np[i] if m_np is None else pts_np[i][m_np[i]]
        uv_i = uv_lr if m_np is None else uv_lr[m_np[i]]
        if uv_i.reshape(-1, 2).shape[0] < 2:
            focals.append(1.0)
            shifts.append(0.0)
            continue
        if focal is None:
            s, f = solve_focal_shift(uv_i, p_i)
            focals.append(float(f))
        else:
            s = solve_shift(uv_i, p_i, focal.reshape(-1).cpu().numpy()[i])
        shifts.append(float(s))
    shift_t = torch.tensor(shifts, dtype=points.dtype, device=points.device)
    focal_t = torch.tensor(focals, dtype=points.dtype, device=points.device) if focal is None else focal.reshape(b)
    return focal_t, shift_t


def focal_from_fov_x(fov_x_deg: float | torch.Tensor, aspect: float, dtype: torch.dtype = torch.float32,
                     device: torch.device | None = None) -> torch.Tensor:
    """Half-diagonal focal of a horizontal field of view (degrees) at aspect W/H."""
    fov = torch.as_tensor(fov_x_deg, dtype=dtype, device=device)
    return aspect / (1 + aspect ** 2) ** 0.5 / torch.tan(torch.deg2rad(fov) / 2)


def normalized_intrinsics(focal: torch.Tensor, aspect: float) -> torch.Tensor:
    """(B,) half-diagonal focal -> (B, 3, 3) normalised K with cx = cy = 0.5."""
    fx = focal / 2 * (1 + aspect ** 2) ** 0.5 / aspect
    fy = focal / 2 * (1 + aspect ** 2) ** 0.5
    k = torch.zeros(*focal.shape, 3, 3, dtype=focal.dtype, device=focal.device)
    k[..., 0, 0], k[..., 1, 1], k[..., 0, 2], k[..., 1, 2], k[..., 2, 2] = fx, fy, 0.5, 0.5, 1.0
    return k


def fov_x_degrees(fx_px: float, width: int) -> float:
    """Horizontal field of view (degrees) of a pixel focal length at an image width."""
    return math.degrees(2 * math.atan(width / (2 * fx_px)))


def normalized_to_pixel(K_norm: np.ndarray, width: int, height: int,
                        convention: PixelConvention = "opencv") -> np.ndarray:
    """Normalised K -> (3, 3) float64 pixel K.

    ``opencv``: principal point cx*W - 0.5 (pixel centres at integers; what a CameraInfo means).
    ``official``: cx*W, as ``run_point_cloud.py`` does (half a pixel off; kept for cloud parity).
    """
    k = np.asarray(K_norm, dtype=np.float64)
    if k.shape != (3, 3):
        raise InputError(f"normalised intrinsics must be (3, 3), got {k.shape}")
    off = 0.5 if convention == "opencv" else 0.0
    return np.array([[k[0, 0] * width, 0.0, k[0, 2] * width - off],
                     [0.0, k[1, 1] * height, k[1, 2] * height - off], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class RegionOfInterest:
    """sensor_msgs/RegionOfInterest in full-resolution (unbinned) pixels; all zeros = full image."""

    x_offset: int = 0
    y_offset: int = 0
    width: int = 0
    height: int = 0
    do_rectify: bool = False

    @property
    def is_full(self) -> bool:
        return self.x_offset == 0 and self.y_offset == 0 and self.width == 0 and self.height == 0


def _mat(v: np.ndarray | list[float] | tuple[float, ...], shape: tuple[int, int], name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.size != shape[0] * shape[1]:
        raise CameraInfoMismatch(f"{name} needs {shape[0] * shape[1]} values, got {a.size}")
    return a.reshape(shape)


@dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """A ROS-free CameraInfo: field names and meanings follow sensor_msgs/CameraInfo.

    ``width``/``height``: calibration resolution (full sensor, before binning/ROI). ``K`` (3, 3)
    intrinsics of the raw image, ``P`` (3, 4) projection of the rectified image (its left 3x3 is
    what rectified images are back-projected with), ``D``/``distortion_model`` the raw image's
    distortion, ``binning_x/y`` (0 or 1 = none), ``roi`` the published sub-window. ``fx, fy, cx, cy``
    read ``P`` (image_geometry's convention) of this message as is.
    """

    width: int
    height: int
    K: np.ndarray
    P: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = ""
    binning_x: int = 0
    binning_y: int = 0
    roi: RegionOfInterest = RegionOfInterest()

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", _mat(self.K, (3, 3), "K"))
        object.__setattr__(self, "P", _mat(self.P, (3, 4), "P"))
        object.__setattr__(self, "D", np.asarray(self.D, dtype=np.float64).reshape(-1))
        if self.width < 0 or self.height < 0 or self.binning_x < 0 or self.binning_y < 0:
            raise CameraInfoMismatch(f"negative size/binning in CameraInfo: {self.width}x{self.height}, "
                                     f"binning {self.binning_x}x{self.binning_y}")

    @classmethod
    def from_pinhole(cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> "CameraIntrinsics":
        """A distortion-free camera with K = P[:, :3] (what a rectified or predicted camera publishes)."""
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(width, height, k, np.hstack([k, np.zeros((3, 1))]), np.zeros(5), "plumb_bob")

    @classmethod
    def from_normalized(cls, K_norm: np.ndarray, width: int, height: int,
                        convention: PixelConvention = "opencv") -> "CameraIntrinsics":
        """Camera of a MoGe-2 normalised K at ``width`` x ``height`` pixels."""
        k = normalized_to_pixel(K_norm, width, height, convention)
        return cls.from_pinhole(width, height, k[0, 0], k[1, 1], k[0, 2], k[1, 2])

    @property
    def is_calibrated(self) -> bool:
        """image_geometry's rule: an all-zero K (K[0] == 0) means 'uncalibrated camera'."""
        return bool(self.K[0, 0] != 0.0)

    @property
    def fx(self) -> float:
        return float(self.P[0, 0])

    @property
    def fy(self) -> float:
        return float(self.P[1, 1])

    @property
    def cx(self) -> float:
        return float(self.P[0, 2])

    @property
    def cy(self) -> float:
        return float(self.P[1, 2])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraIntrinsics):
            return NotImplemented
        same = (self.width, self.height, self.distortion_model, self.binning_x, self.binning_y, self.roi) == \
            (other.width, other.height, other.distortion_model, other.binning_x, other.binning_y, other.roi)
        return same and all(np.array_equal(a, b) for a, b in
                            ((self.K, other.K), (self.P, other.P), (self.D, other.D)))

    __hash__ = None  # type: ignore[assignment]  # arrays inside: not hashable

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the images this CameraInfo accompanies (ROI, then binning applied)."""
        bx, by = max(self.binning_x, 1), max(self.binning_y, 1)
        w = self.width if self.roi.is_full else self.roi.width
        h = self.height if self.roi.is_full else self.roi.height
        return w // bx, h // by

    def reduced_P(self) -> np.ndarray:
        """P for the published image: image_geometry subtracts the ROI offset, then divides by binning."""
        p = self.P.copy()
        p[0, 2] -= self.roi.x_offset  # raw-ROI offset, as image_geometry does (its own @todo)
        p[1, 2] -= self.roi.y_offset
        if self.binning_x > 1:
            p[0, [0, 2, 3]] /= self.binning_x
        if self.binning_y > 1:
            p[1, [1, 2, 3]] /= self.binning_y
        return p

    def rectified(self, width: int, height: int,
                  scaling: Literal["pixel_center", "image_proc"] = "pixel_center") -> "CameraIntrinsics":
        """Distortion-free camera of the rectified image resized to ``width`` x ``height``.

        ``pixel_center`` maps principal points as cv2.resize maps pixels, c' = (c + 0.5) s - 0.5
        (exact for our resized depth); ``image_proc`` uses c' = c s like image_proc's resize node.
        """
        if not self.is_calibrated:
            raise CameraInfoMismatch("uncalibrated CameraInfo (K[0] == 0) has no rectified intrinsics")
        w0, h0 = self.image_size
        if w0 < 1 or h0 < 1 or width < 1 or height < 1:
            raise CameraInfoMismatch(f"cannot scale intrinsics from {w0}x{h0} to {width}x{height}")
        p = self.reduced_P()
        sx, sy = width / w0, height / h0
        off_x, off_y = ((sx - 1) / 2, (sy - 1) / 2) if scaling == "pixel_center" else (0.0, 0.0)
        out = CameraIntrinsics.from_pinhole(width, height, p[0, 0] * sx, p[1, 1] * sy,
                                            p[0, 2] * sx + off_x, p[1, 2] * sy + off_y)
        tx = np.zeros((3, 1))
        tx[0, 0], tx[1, 0], tx[2, 0] = p[0, 3] * sx, p[1, 3] * sy, p[2, 3]  # stereo baseline term kept
        return replace(out, P=np.hstack([out.K, tx]))

    def check_image(self, width: int, height: int) -> None:
        """Raise CameraInfoMismatch unless this CameraInfo describes a ``width`` x ``height`` image."""
        if self.image_size != (width, height):
            raise CameraInfoMismatch(f"CameraInfo describes {self.image_size[0]}x{self.image_size[1]} images "
                                     f"(size {self.width}x{self.height}, binning {self.binning_x}x{self.binning_y},"
                                     f" roi {self.roi.width}x{self.roi.height}), frame is {width}x{height}")
