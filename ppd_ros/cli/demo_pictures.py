"""Demo pictures with numpy + OpenCV only: depth panels, error maps, an oblique point-cloud view and a
latency plot. Every function returns a BGR uint8 image (for ``cv2.imwrite``)."""
from __future__ import annotations

import cv2
import numpy as np

from ..visualize import colorize

FONT = cv2.FONT_HERSHEY_SIMPLEX


def label(img: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` on a dark band at the top-left of a BGR image (in place) and return it."""
    (w, h), _ = cv2.getTextSize(text, FONT, 0.45, 1)
    cv2.rectangle(img, (0, 0), (w + 6, h + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (3, h + 4), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def error_map(abs_rel: np.ndarray, vmax: float = 0.3) -> np.ndarray:
    """(H, W) |pred - gt| / gt -> BGR heat map (black = no GT), saturating at ``vmax``."""
    v = np.isfinite(abs_rel)
    u8 = (np.clip(np.nan_to_num(abs_rel) / vmax, 0, 1) * 255).astype(np.uint8)
    out = cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO)
    out[~v] = 0
    return out


def depth_panel(rgb: np.ndarray, pred: np.ndarray, gt: np.ndarray | None, abs_rel_map: np.ndarray | None,
                title: str) -> np.ndarray:
    """RGB | predicted depth | GT depth | error vs GT (the last two only when GT exists)."""
    tiles = [label(np.ascontiguousarray(rgb[..., ::-1]), title), label(colorize(pred), "model depth")]
    if gt is not None:
        g = np.where(np.isfinite(gt) & (gt > 0), np.log1p(gt), np.nan)
        tiles.append(label(colorize(g), "ground truth"))
    if abs_rel_map is not None:
        tiles.append(label(error_map(abs_rel_map), f"AbsRel err (0..0.3) mean {np.nanmean(abs_rel_map):.3f}"))
    return np.concatenate(tiles, 1)


def stack_rows(rows: list[np.ndarray], width: int = 960) -> np.ndarray:
    """Resize rows to a common width and stack them vertically."""
    out = []
    for r in rows:
        s = width / r.shape[1]
        out.append(cv2.resize(r, (width, max(1, round(r.shape[0] * s))), interpolation=cv2.INTER_NEAREST))
    return np.concatenate(out, 0)


def render_cloud(depth: np.ndarray, K: np.ndarray, rgb: np.ndarray, yaw_deg: float = 35.0, pitch_deg: float = 20.0,
                 size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Splat the organised cloud of ``depth`` (metres, camera K) seen from an oblique virtual camera."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    ok = np.isfinite(depth) & (depth > 0)
    z = depth[ok].astype(np.float64)
    pts = np.stack([(u[ok] - K[0, 2]) / K[0, 0] * z, (v[ok] - K[1, 2]) / K[1, 1] * z, z], 1)
    cols = rgb[ok][:, ::-1]
    H, W = size
    out = np.full((H, W, 3), 30, np.uint8)
    if len(pts) == 0:
        return label(out, "no valid points")
    centre = np.median(pts, 0)
    yaw, pitch = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    q = (pts - centre) @ (rx @ ry).T
    q[:, 2] += 2.2 * float(np.percentile(np.linalg.norm(pts - centre, axis=1), 95)) + 1e-3  # step back
    front = q[:, 2] > 1e-3
    q, cols = q[front], cols[front]
    f = 0.9 * W
    x = np.round(q[:, 0] / q[:, 2] * f + W / 2).astype(int)
    y = np.round(q[:, 1] / q[:, 2] * f + H / 2).astype(int)
    inside = (x >= 0) & (x < W - 1) & (y >= 0) & (y < H - 1)
    x, y, zz, cols = x[inside], y[inside], q[inside, 2], cols[inside]
    order = np.argsort(-zz)  # far first, near overwrite
    for dx in (0, 1):  # 2x2 splats close the gaps between samples
        for dy in (0, 1):
            out[y[order] + dy, x[order] + dx] = cols[order]
    return out


TOTAL_KEYS = ("pipeline", "total")  # aggregates of the other stages: drawn as a tick, not stacked


def latency_plot(latencies: list[dict[str, float]], warm: list[bool | None] | None = None,
                 size: tuple[int, int] = (340, 800)) -> np.ndarray:
    """Stacked bars of per-stage latency (ms) per output frame; a black tick marks the pipeline total.

    ``warm`` (per frame): a strip under the bars marks warm-started (green) and cold-started (red) frames.
    """
    H, W = size
    img = np.full((H, W, 3), 255, np.uint8)
    if not latencies:
        return label(img, "no frames")
    totals = [next((lat[k] for k in TOTAL_KEYS if k in lat), None) for lat in latencies]
    latencies = [{k: v for k, v in lat.items() if k not in TOTAL_KEYS} for lat in latencies]
    stages = sorted({k for lat in latencies for k in lat})
    palette = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
               (194, 119, 227), (127, 127, 127)]
    top = max(max(sum(lat.values()) for lat in latencies), max((t for t in totals if t), default=0)) * 1.1 + 1e-6
    x0, y0, x1, y1 = 50, 60, W - 10, H - 30
    bw = max(1, (x1 - x0) // len(latencies))
    for i, lat in enumerate(latencies):
        base = y1
        for s, name in enumerate(stages):
            hpx = int(round(lat.get(name, 0.0) / top * (y1 - y0)))
            cv2.rectangle(img, (x0 + i * bw, base - hpx), (x0 + (i + 1) * bw - 2, base), palette[s % len(palette)], -1)
            base -= hpx
        if totals[i]:
            yt = int(round(y1 - totals[i] / top * (y1 - y0)))
            cv2.line(img, (x0 + i * bw, yt), (x0 + (i + 1) * bw - 2, yt), (0, 0, 0), 2)
    for i, w in enumerate(warm or []):
        if w is not None:
            cv2.rectangle(img, (x0 + i * bw, y1 + 3), (x0 + (i + 1) * bw - 2, y1 + 9),
                          (60, 170, 60) if w else (40, 40, 210), -1)
    if warm and any(w is not None for w in warm):
        cv2.putText(img, "strip: green = warm start, red = cold start", (x0 + 200, H - 8), FONT, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.line(img, (x0, y1), (x1, y1), (0, 0, 0), 1)
    cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 1)
    for frac in (0.0, 0.5, 1.0):
        yy = int(y1 - frac * (y1 - y0))
        cv2.putText(img, f"{frac * top:.0f}", (2, yy + 4), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "latency per output frame [ms]: stacked stages, black tick = pipeline total", (x0, 15), FONT,
                0.45, (0, 0, 0), 1, cv2.LINE_AA)
    per_row = max(1, (W - x0) // 105)
    for s, name in enumerate(stages):
        lx, ly = x0 + (s % per_row) * 105, 22 + (s // per_row) * 16
        cv2.rectangle(img, (lx, ly), (lx + 10, ly + 10), palette[s % len(palette)], -1)
        cv2.putText(img, name[:13], (lx + 14, ly + 10), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "frame", (W // 2, H - 8), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img
