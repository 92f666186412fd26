"""Scale/shift chaining of PPVD windows (the official ``align_video_depth``), as pure numpy functions.

Window 0 is the frame of reference of the whole stream; every later window is mapped onto it by one
least-squares affine fit of its reference-frame predictions against the anchor maps ``A`` (the aligned
predictions those same frames received earlier). ``A[0]`` is window 0's prediction of frame 0 and is
never replaced, which is what keeps the chain from drifting over long streams.
"""
from __future__ import annotations

import numpy as np


def fit_scale_shift(pred: np.ndarray, target: np.ndarray) -> tuple[np.float32, np.float32]:
    """min_{s,b} sum (s*pred + b - target)^2 over all pixels, via float32 normal equations.

    The sums are float32 numpy reductions exactly as the official code forms them; a singular system
    (constant prediction) gives s = 1, b = 0.
    """
    p = np.ascontiguousarray(pred, dtype=np.float32).reshape(-1)
    q = np.ascontiguousarray(target, dtype=np.float32).reshape(-1)
    a00 = np.sum(p * p)
    a01 = np.sum(p)
    a11 = np.float32(p.size)
    b0 = np.sum(p * q)
    b1 = np.sum(q)
    det = a00 * a11 - a01 * a01
    if det == 0:
        return np.float32(1.0), np.float32(0.0)
    return np.float32((a11 * b0 - a01 * b1) / det), np.float32((a00 * b1 - a01 * b0) / det)


def align_to_anchors(window_pred: np.ndarray, anchors: np.ndarray,
                     num_refs: int) -> tuple[np.ndarray, np.float32, np.float32]:
    """(N, H, W) window prediction, (R, H, W) anchors -> (aligned window, scale, shift).

    The fit uses the window's first ``num_refs`` frames (the references) against ``anchors``.
    """
    s, b = fit_scale_shift(window_pred[:num_refs], anchors)
    return (s * window_pred + b).astype(np.float32), s, b


def next_anchors(anchors: np.ndarray, aligned: np.ndarray, keyframes: tuple[int, ...],
                 keep_first: bool = True) -> np.ndarray:
    """Anchors for the next window: [A[0], aligned[k] for k in keyframes[1:]] (official: [A0, e8, e15])."""
    first = anchors[0] if keep_first else aligned[keyframes[0]]
    return np.stack([first, *[aligned[k] for k in keyframes[1:]]]).astype(np.float32)


def align_video_depth(window_preds: list[np.ndarray], keyframes: tuple[int, ...] = (0, 8, 15),
                      ) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """Offline form over all windows: returns per-window published frames and the (scale, shift) list.

    Window 0 publishes all its frames unchanged; window w >= 1 publishes its frames after the
    references, aligned. Used by the tests and the benchmark; the pipeline applies the same steps
    incrementally.
    """
    r = len(keyframes)
    out = [window_preds[0].astype(np.float32)]
    anchors = np.stack([window_preds[0][k] for k in keyframes]).astype(np.float32)
    fits: list[tuple[float, float]] = []
    for pred in window_preds[1:]:
        aligned, s, b = align_to_anchors(pred, anchors, r)
        fits.append((float(s), float(b)))
        out.append(aligned[r:])
        anchors = next_anchors(anchors, aligned, keyframes)
    return out, fits
