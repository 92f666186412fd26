"""Calibrate the embedded small MoGe-2's publication threshold on held-out synthetic frames (issue 14, item 4).

Why: the official 0.5 on the small model's mask leaves ~40 % of the bundled Kinect frame unpublished:
it calls the pale back wall "sky" (probability ~0.03). The small model's probabilities are compressed:
on synthetic frames almost every pixel, sky included, is above 0.015, and valid pixels of some frames
sit as low as the Kinect wall. So one threshold cannot both keep every surface and drop the sky; we
choose to keep surfaces (a hole in the cloud is worse for a robot than a far, capped sky) and say what
it costs.

What: the threshold is calibrated on *held-out* synthetic frames (``CALIBRATION_SEED``, a seed range used
neither in training, monitoring nor the model card's test set), never on the real frames: the largest
threshold on a fixed grid whose **worst frame** publishes >= ``target_worst_recall`` of its valid pixels.
Half of the frames have plain pale walls (``make_frame_plain_walls``: the same scene with a sky-coloured
untextured material on walls / ceiling / facade), the case the colour shortcut fails on. The result is
stored as ``inference.publish_threshold`` in the model card: it decides which pixels the metric stage
publishes; the focal/shift solve and the RANSAC fit keep the official 0.5 mask (pixels the model takes for
sky have untrained point-map depths, which would bias the scale). The official MoGe-2 keeps 0.5 for both.

A mask-head-only fine-tune on plain-wall frames was tried first and did not move the Kinect wall
(0.602 -> published 0.608 at 0.45, Aloe fell to 0.80): not shipped.

    python -m ppd_ros.train.moge2_mask                 # table + threshold (~1 min)
    python -m ppd_ros.train.moge2_mask --write-card    # also store it in ppd_ros/weights/embedded_moge2.json
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.synthetic import SynthConfig, _random_camera, atlas, intrinsics, render, sample_scene
from .dataset import EVAL_SEED_OFFSET, cached_rgb_depth
from .options import add_config_options, config_from_args

CALIBRATION_SEED = 3 * EVAL_SEED_OFFSET + 11  # disjoint from training (seed*1_000_003+i), monitor and TEST_SEED
CARD_FILE = "embedded_moge2.json"


@dataclass(frozen=True)
class MaskCalibrationConfig:
    data: str = ""  # frame-pool cache folder ('' = no cache)
    frames: int = 192  # held-out calibration frames, half of them with plain pale walls
    plain_wall_prob: float = 0.5
    height: int = 96  # the metric stage runs MoGe-2 at the embedded PPD working size
    width: int = 128
    target_worst_recall: float = 0.99  # every calibration frame publishes >= this share of its valid pixels


def make_frame_plain_walls(seed: int, cfg: SynthConfig, plain: bool) -> tuple[np.ndarray, np.ndarray]:
    """``synthetic.make_frame(seed)`` with, when ``plain``, every non-ground plane in a plain pale material.

    The scene, camera and objects are exactly those of ``make_frame(seed)`` (same rng draws); the
    extra colours come from a second generator, so ``plain=False`` reproduces ``make_frame``.
    """
    rng = np.random.default_rng(seed)
    tex = atlas(cfg.atlas_seed)
    K = intrinsics(rng, cfg.height, cfg.width, cfg.hfov_deg)
    pose = _random_camera(rng)
    scene = sample_scene(rng, pose, len(tex), cfg.max_objects)
    if plain:
        extra = np.random.default_rng([seed, 7])
        tex = np.concatenate([tex, np.ones_like(tex[:1])], 0)  # one all-white texture at the end
        mats = scene.materials["planes"].copy()
        n = len(mats) - 1  # plane 0 is the ground
        if n > 0:
            pale = extra.uniform(0.55, 0.95, (n, 3)) * extra.uniform(0.85, 1.1, (n, 1))  # sky-like colours
            mats[1:, 0] = len(tex) - 1
            mats[1:, 2:5] = pale
            scene.materials["planes"] = mats
    f = render(scene, K, pose, cfg.height, cfg.width, tex, rng)
    return f.rgb, f.depth


def plain_wall_pool(seed: int, n: int, cfg: SynthConfig, prob: float, cache_dir: str | Path | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8, (N, H, W) float32 (+inf sky); frame i plain-walled with probability ``prob``."""
    pick = np.random.default_rng([seed, 99]).random(n) < prob
    path = Path(cache_dir) / f"plainwall_s{seed}_n{n}_p{prob}_{cfg.height}x{cfg.width}.npz" if cache_dir else None

    def build() -> tuple[np.ndarray, np.ndarray]:
        rgb = np.empty((n, cfg.height, cfg.width, 3), np.uint8)
        depth = np.empty((n, cfg.height, cfg.width), np.float32)
        for i in range(n):
            rgb[i], depth[i] = make_frame_plain_walls(seed * 1_000_003 + i, cfg, bool(pick[i]))
        return rgb, depth

    return cached_rgb_depth(path, build)


def mask_probabilities(model, rgb: np.ndarray, batch: int = 16) -> np.ndarray:
    """(N, H, W) mask probabilities of ``model`` at the grid the metric stage uses (resolution level 9)."""
    from ..models.moge2 import token_grid
    from ..pipelines.moge import num_tokens_for_level
    h, w = rgb.shape[1:3]
    grid = token_grid(h, w, num_tokens_for_level(9, model.cfg.num_tokens_range))
    out = []
    with torch.inference_mode():
        for i in range(0, len(rgb), batch):
            x = torch.from_numpy(rgb[i:i + batch]).permute(0, 3, 1, 2).float() / 255
            out.append(model.decode(model.encode(x, grid), (h, w)).mask.float().numpy())
    return np.concatenate(out)


def threshold_table(prob: np.ndarray, valid: np.ndarray, thresholds) -> list[dict[str, float]]:
    """Recall of valid pixels, sky published ("leak") and the worst frame's recall per threshold."""
    rows = []
    for t in thresholds:
        pub = prob > t
        per_frame = [float(pub[i][valid[i]].mean()) for i in range(len(prob)) if valid[i].any()]
        rows.append({"threshold": float(t), "recall": float(pub[valid].mean()),
                     "sky_published": float(pub[~valid].mean()) if (~valid).any() else 0.0,
                     "worst_frame_recall": min(per_frame)})
    return rows


GRID = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.04, 0.03, 0.025, 0.02, 0.015, 0.01)


def calibrate(prob: np.ndarray, valid: np.ndarray, target_worst_recall: float) -> tuple[float, list[dict[str, float]]]:
    """The largest threshold on ``GRID`` whose worst frame publishes >= ``target_worst_recall`` of its valid pixels."""
    rows = threshold_table(prob, valid, GRID)
    ok = [r["threshold"] for r in rows if r["worst_frame_recall"] >= target_worst_recall]
    return (max(ok) if ok else GRID[-1]), rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_options(ap, MaskCalibrationConfig)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write-card", action="store_true", help="store the threshold in the embedded MoGe-2 card")
    args = ap.parse_args(argv)
    cfg = config_from_args(MaskCalibrationConfig, args)
    torch.set_num_threads(args.threads)
    from ..embedded import default_model_dir, load_embedded_metric_stage
    model = load_embedded_metric_stage().moge.model
    sc = SynthConfig(height=cfg.height, width=cfg.width)
    rgb, depth = plain_wall_pool(CALIBRATION_SEED, cfg.frames, sc, cfg.plain_wall_prob, cfg.data or None)
    threshold, rows = calibrate(mask_probabilities(model, rgb), np.isfinite(depth), cfg.target_worst_recall)
    print(f"held-out synthetic frames: seed {CALIBRATION_SEED}, {cfg.frames} frames ({cfg.plain_wall_prob:.0%} "
          f"plain-walled), {cfg.width}x{cfg.height}")
    print(f"{'threshold':>10}{'recall':>9}{'worst frame':>13}{'sky published':>15}")
    for r in rows:
        print(f"{r['threshold']:>10g}{r['recall']:>9.4f}{r['worst_frame_recall']:>13.4f}{r['sky_published']:>15.4f}")
    chosen = next(r for r in rows if r["threshold"] == threshold)
    print(f"publish_threshold = {threshold:g} (largest with worst-frame recall >= {cfg.target_worst_recall}); "
          f"synthetic sky published at it: {chosen['sky_published']:.1%}")
    record = {"calibration_seed": CALIBRATION_SEED, "config": asdict(cfg), "publish_threshold": threshold,
              "at_threshold": chosen, "at_official_0.5": rows[0]}
    if args.write_card:
        path = Path(default_model_dir()) / CARD_FILE
        card = json.loads(path.read_text())
        card["inference"]["publish_threshold"] = threshold
        card["mask_calibration"] = {
            **record, "rule": "largest threshold whose worst held-out synthetic frame publishes >= "
                              f"{cfg.target_worst_recall} of its valid pixels; the fit keeps mask > 0.5",
            "command": "python -m ppd_ros.train.moge2_mask --write-card",
            "real_frames": "reported by bench/eval_real.py (published fraction), never used here"}
        path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
