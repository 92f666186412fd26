"""Training of the embedded small MoGe-2 (preset ``embedded_moge2``) from scratch on synthetic frames.

The network is the unmodified ``MoGe2Model``; its raw outputs (exp-remapped point map, mask
probabilities, metric scale from the class token) are trained with MoGe-style losses:

* points: scale-aligned (least squares on the relative depth error) L1 against the GT camera-frame
  points, each pixel weighted by 1/Z_gt. The GT points are ``((u - W/2)/fx * Z, (v - H/2)/fx * Z, Z)`` at pixel centres:
  the OpenCV camera frame of a centred square-pixel pinhole, in which ``pipelines.moge.postprocess``
  recovers the focal (uv = f * (x, y)/z) and a zero shift.
* mask: binary cross-entropy, sky (+inf depth) invalid.
* metric scale: |log metric_scale - log s|, s the (detached) geometric mean of Z_gt/z over valid pixels,
  so that ``postprocess``' ``depth = metric_scale * (z + shift)`` is in metres.

Deterministic by seed (init from ``seed``, batch ``k`` from ``(seed, k)``), resumable from
``<out>/last.pt``. ``python -m ppd_ros.train.moge2_small --help`` runs it alone; ``ppd-ros train``
runs it as its last stage.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import preset
from ..data.synthetic import SynthConfig, intrinsics
from ..models.moge2 import MoGe2Model, MoGe2Output
from .dataset import EVAL_SEED_OFFSET, flip_and_jitter, frame_pool
from .options import add_config_options, config_from_args

PRESET = "embedded_moge2"
WEIGHTS_FILE = "embedded_moge2.safetensors"
CARD_FILE = "embedded_moge2.json"
TEST_SEED = 2 * EVAL_SEED_OFFSET + 7  # = benchmark.TEST_SEED: never used in training or monitoring


@dataclass(frozen=True)
class MoGe2TrainConfig:
    out: str = "runs/moge2_small"
    data: str = "runs/data"  # frame-pool cache (shared with the PPD trainer)
    seed: int = 0
    frames: int = 4096
    height: int = 96
    width: int = 128
    batch: int = 16
    steps: int = 3000
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    mask_weight: float = 0.5
    scale_weight: float = 1.0
    max_depth: float = 200.0  # point-loss cap (near-horizon ground can be km away)
    scale_target: str = "geomean"  # scale-head target: "geomean" of Z/z, or "fit" (the point alignment, biased low)
    eval_every: int = 250
    eval_frames: int = 48
    ckpt_every: int = 100


def frame_intrinsics(seed: int, n: int, cfg: SynthConfig) -> np.ndarray:
    """(N, 3, 3) K of pool frames: ``make_frame`` draws K first from its seed, so it is recomputed exactly."""
    return np.stack([intrinsics(np.random.default_rng(seed * 1_000_003 + i), cfg.height, cfg.width, cfg.hfov_deg)
                     for i in range(n)]).astype(np.float32)


def gt_points(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, H, W) metres (+inf sky) + (B, 3, 3) pixel K -> (B, H, W, 3) OpenCV camera points at pixel centres."""
    b, h, w = depth.shape
    # MoGe's model (and postprocess' focal/shift solver) knows only a centred principal point and square
    # pixels: the synthetic camera's small offsets (cx, cy within 3 %, fy/fx within 3 %) would otherwise
    # be explained away by a wrong z-shift. The targets keep the exact depth and use cx = W/2, cy = H/2, fy = fx.
    f = K[:, 0, 0, None, None]
    u = torch.arange(w, dtype=depth.dtype) + 0.5 - w / 2
    v = torch.arange(h, dtype=depth.dtype) + 0.5 - h / 2
    x = u[None, None, :] / f
    y = v[None, :, None] / f
    z = torch.where(torch.isfinite(depth), depth, torch.zeros((), dtype=depth.dtype))  # no inf*0 NaNs
    return torch.stack([x * z, y * z, z], dim=-1)


def half_diagonal_focal(K: np.ndarray | torch.Tensor, height: int, width: int):
    """Pixel fx -> MoGe's focal unit (fx over the half image diagonal)."""
    return K[..., 0, 0] / (0.5 * math.hypot(width, height))


def sample_batch(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, batch: int, seed: int, step: int,
                 augment: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch ``step``: (B, 3, H, W) RGB [0, 1], (B, H, W) depth, (B, 3, 3) K; flips mirror cx, colour jitter."""
    rng = np.random.default_rng([seed, step])
    idx = rng.integers(0, len(rgb), batch)
    x = torch.from_numpy(rgb[idx]).permute(0, 3, 1, 2).float() / 255
    d = torch.from_numpy(depth[idx]).clone()
    k = torch.from_numpy(K[idx]).clone()
    if augment:
        x, d, flip = flip_and_jitter(rng, x, d)
        k[flip, 0, 2] = rgb.shape[2] - k[flip, 0, 2]  # mirrored principal point (the targets centre it anyway)
    return x.contiguous(), d, k


def moge2_losses(out: MoGe2Output, depth: torch.Tensor, K: torch.Tensor, max_depth: float = 200.0,
                 scale_target: str = "geomean") -> dict[str, torch.Tensor]:
    """Scale-aligned point L1 (1/Z weighted), mask BCE and log metric-scale L1 of a raw ``MoGe2Model`` output.

    ``depth`` (B, H, W) metres with +inf sky, ``K`` (B, 3, 3) pixel intrinsics of the same size.
    """
    gt = gt_points(depth, K)
    finite = torch.isfinite(depth)
    valid = finite & (depth > 0) & (depth < max_depth)
    inv_z = torch.where(valid, 1.0 / gt[..., 2].clamp_min(1e-6), torch.zeros(()))
    pts = out.points
    n = valid.sum((1, 2))
    zp = pts[..., 2]
    # point alignment: least-squares scale of the relative depth error, argmin_s sum ((s zp - Z)/Z)^2
    s = (zp * inv_z).sum((1, 2)) / (zp * inv_z).square().sum((1, 2)).clamp_min(1e-12)
    err = ((s[:, None, None, None] * pts - gt).abs().sum(-1) * inv_z).sum((1, 2))
    if scale_target == "geomean":
        # that fit is biased low by ~1/(1 + CV^2) while the shape is poor; the scale head learns the
        # geometric mean of Z/z instead, so the median depth ratio at inference is ~1 (z > 0: exp remap)
        log_r = torch.where(valid, torch.log(gt[..., 2].clamp_min(1e-6)) - torch.log(zp), torch.zeros(()))
        target = torch.exp(log_r.sum((1, 2)) / n.clamp_min(1))
    else:
        target = s
    has = n > 0  # frames that are all sky carry no geometry
    point = (err / n.clamp_min(1))[has].mean() if has.any() else pts.sum() * 0
    mask = F.binary_cross_entropy(out.mask.clamp(1e-6, 1 - 1e-6), finite.to(out.mask.dtype))
    log_s = torch.log(target.detach().clamp_min(1e-8))
    scale = (torch.log(out.metric_scale) - log_s).abs()[has].mean() if has.any() else out.metric_scale.sum() * 0
    return {"point": point, "mask": mask, "scale": scale}


def total_loss(parts: dict[str, torch.Tensor], cfg: MoGe2TrainConfig) -> torch.Tensor:
    return parts["point"] + cfg.mask_weight * parts["mask"] + cfg.scale_weight * parts["scale"]


def num_tokens(model: MoGe2Model) -> int:
    """The budget ``infer`` uses at resolution level 9 (the range's maximum): training runs at the same grid."""
    return model.cfg.num_tokens_range[1]


@torch.no_grad()
def evaluate(model: MoGe2Model, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray,
             batch: int = 16) -> dict[str, float]:
    """Held-out errors through ``pipelines.moge.infer`` (focal and shift solved from the points, as at run time).

    focal_abs_rel_error: mean |f_pred/f_gt - 1|; scale_ratio: median over frames of the per-frame median
    pred/GT depth; metric_absrel: mean over frames of |pred - gt|/gt on valid GT inside the predicted mask
    (depth < 80 m); mask_accuracy: pixel agreement of the mask with finite GT.
    """
    from ..pipelines.moge import infer
    model.eval()
    focal_err, ratios, absrel, acc = [], [], [], []
    h, w = depth.shape[1:]
    for i in range(0, len(rgb), batch):
        x = torch.from_numpy(rgb[i:i + batch]).permute(0, 3, 1, 2).float() / 255
        pred = infer(model, x)
        f_gt = half_diagonal_focal(K[i:i + batch], h, w)
        for j in range(len(x)):
            gt = depth[i + j]
            pd = pred.depth[j].numpy()
            focal_err.append(abs(float(pred.focal[j]) / float(f_gt[j]) - 1.0))
            acc.append(float((pred.mask[j].numpy() == np.isfinite(gt)).mean()))
            v = np.isfinite(gt) & (gt < 80) & np.isfinite(pd) & (pd > 0)
            if v.sum() < 10:
                continue
            ratios.append(float(np.median(pd[v] / gt[v])))
            absrel.append(float(np.mean(np.abs(pd[v] - gt[v]) / gt[v])))
    return {"frames": len(rgb), "focal_abs_rel_error": float(np.mean(focal_err)),
            "scale_ratio_median": float(np.median(ratios)) if ratios else float("nan"),
            "scale_abs_log_error": float(np.mean(np.abs(np.log(ratios)))) if ratios else float("nan"),
            "metric_absrel": float(np.mean(absrel)) if absrel else float("nan"),
            "mask_accuracy": float(np.mean(acc))}


@torch.no_grad()
def evaluate_real_frames(model: MoGe2Model) -> dict[str, dict[str, float]]:
    """The small MoGe-2 alone on the bundled metric real frames at the PPD working size (128x96 area):
    focal relative error (signed), median depth ratio pred/GT, metric AbsRel. Reporting only."""
    import cv2

    from ..data.real import load_real_frames
    from ..pipelines.moge import infer
    model.eval()
    out = {}
    for f in load_real_frames():
        if not f.metric or f.K is None:
            continue
        H, W = f.depth.shape
        h, w = 96, 128  # where the metric stage runs it (the embedded PPD working size)
        x = torch.from_numpy(cv2.resize(f.rgb, (w, h), interpolation=cv2.INTER_AREA)).permute(2, 0, 1).float() / 255
        pred = infer(model, x)
        fx = float(pred.intrinsics[0, 0, 0]) * W  # normalised -> this frame's pixels
        d = cv2.resize(pred.depth[0].numpy(), (W, H), interpolation=cv2.INTER_NEAREST)
        v = np.isfinite(f.depth) & np.isfinite(d)
        out[f.name] = {"focal_rel_error": fx / float(f.K[0, 0]) - 1.0,
                       "scale_ratio": float(np.median(d[v] / f.depth[v])),
                       "metric_absrel": float(np.mean(np.abs(d[v] - f.depth[v]) / f.depth[v]))}
    return out


def metric_stage_errors(model: MoGe2Model) -> dict | None:
    """``benchmark.evaluate_metric`` of the metric stage on this model with the shipped small PPD (None if absent)."""
    from ..embedded import EmbeddedModelUnavailable, load_embedded_image_pipeline
    from ..pipelines.metric import MetricStage
    from ..pipelines.moge import MoGe2Runner
    from .benchmark import evaluate_metric
    try:
        pipe = load_embedded_image_pipeline()
    except EmbeddedModelUnavailable:
        return None
    return evaluate_metric(pipe, MetricStage(MoGe2Runner(model)))


class MoGe2Trainer:
    """Owns the model, optimiser, schedule and data; ``run()`` trains to ``cfg.steps`` (resumable)."""

    def __init__(self, cfg: MoGe2TrainConfig, log=print) -> None:
        self.cfg, self.log = cfg, log
        self.out = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        self.model = MoGe2Model(preset(PRESET))
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warm, total = max(cfg.warmup, 1), max(cfg.steps, 1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        self.step = 0
        self.history: list[dict] = []
        ckpt = self.out / "last.pt"
        if ckpt.exists():
            st = torch.load(ckpt, map_location="cpu", weights_only=True)
            self.model.load_state_dict(st["model"])
            self.opt.load_state_dict(st["opt"])
            self.sched.load_state_dict(st["sched"])
            self.step, self.history = st["step"], st["history"]
        self._data = None

    def data(self):
        if self._data is None:
            c = self.cfg
            sc = SynthConfig(height=c.height, width=c.width)
            rgb, depth = frame_pool(c.seed, c.frames, sc, c.data)
            ev_seed = EVAL_SEED_OFFSET + c.seed
            ev_rgb, ev_depth = frame_pool(ev_seed, c.eval_frames, sc, c.data)
            self._data = (rgb, depth, frame_intrinsics(c.seed, c.frames, sc),
                          ev_rgb, ev_depth, frame_intrinsics(ev_seed, c.eval_frames, sc))
        return self._data

    def train_step(self, step: int) -> dict[str, float]:
        rgb, depth, K = self.data()[:3]
        x, d, k = sample_batch(rgb, depth, K, self.cfg.batch, self.cfg.seed, step)
        self.model.train()
        parts = moge2_losses(self.model(x, num_tokens(self.model)), d, k, self.cfg.max_depth, self.cfg.scale_target)
        loss = total_loss(parts, self.cfg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "last.pt.tmp"
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                    "step": self.step, "history": self.history, "config": asdict(self.cfg)}, tmp)
        tmp.replace(self.out / "last.pt")

    def run(self, until: int | None = None) -> MoGe2Model:
        end = min(self.cfg.steps, until) if until is not None else self.cfg.steps
        if self.step >= end:
            return self.model
        self.data()
        t0, run_avg = time.perf_counter(), None
        bar = tqdm(range(self.step, end), initial=self.step, total=self.cfg.steps, desc="small MoGe-2", mininterval=10)
        for step in bar:
            m = self.train_step(step)
            self.step = step + 1
            run_avg = m if run_avg is None else {k: 0.98 * run_avg[k] + 0.02 * v for k, v in m.items()}
            bar.set_postfix({k: f"{v:.3f}" for k, v in run_avg.items()}, refresh=False)
            if self.step % self.cfg.eval_every == 0 or self.step == self.cfg.steps:
                ev = evaluate(self.model, *self.data()[3:])
                rec = {"step": self.step, "train": run_avg, "monitor": ev, "seconds": round(time.perf_counter() - t0, 1)}
                self.history.append(rec)
                self.log(json.dumps(rec))
            if self.step % self.cfg.ckpt_every == 0 or self.step == end:
                self.save()
        return self.model.eval()

    def export(self, weights_dir: str | Path, command: str, extra: dict | None = None) -> dict:
        """Write the shipped safetensors and the JSON model card (with held-out and real-frame errors)."""
        from safetensors.torch import save_file
        wd = Path(weights_dir)
        wd.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(wd / WEIGHTS_FILE))
        c = self.cfg
        sc = SynthConfig(height=c.height, width=c.width)
        t_rgb, t_depth = frame_pool(TEST_SEED, 32, sc, c.data)
        card = {"name": "embedded_moge2", "kind": "MoGe-2 (metric scale + intrinsics), small demonstration model",
                "preset": PRESET, "file": WEIGHTS_FILE,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "train_config": asdict(c), "trained_steps": self.step, "seed": c.seed,
                "data": f"{c.frames} procedural synthetic RGB-D frames (ppd_ros.data.synthetic), {c.width}x{c.height}, "
                        f"seed {c.seed}; hfov 40-80 deg; trained from scratch (no pretrained weights)",
                "licence": "Apache-2.0 (trained here)", "command": command,
                "inference": {"predictor": "ppd_ros.pipelines.moge.MoGe2Runner", "resolution_level": 9,
                              "num_tokens": num_tokens(self.model), "working_size": [c.height, c.width]},
                "metrics": {"synthetic_heldout": {"seed": TEST_SEED, **evaluate(self.model, t_rgb, t_depth,
                                                                                 frame_intrinsics(TEST_SEED, 32, sc))},
                            "real_moge2_alone": evaluate_real_frames(self.model),
                            "command": "python -m ppd_ros.train.moge2_small --evaluate"},
                **(extra or {})}
        stage = metric_stage_errors(self.model)
        if stage is not None:  # depends on the PPD weights shipped at export time too
            card["metrics"]["real_metric_stage_with_shipped_ppd"] = {
                **stage, "command": "python bench/eval_real.py (metric stage line)"}
        (wd / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
        return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="train the embedded small MoGe-2 (CPU, resumable)")
    add_config_options(ap, MoGe2TrainConfig)
    ap.add_argument("--until", type=int, default=None, help="stop at this step (resume later)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--export", default=None, help="write the weights + model card to this folder after training")
    ap.add_argument("--evaluate", action="store_true", help="only print the shipped model's card metrics afresh")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.evaluate:
        from ..embedded import load_embedded_metric_stage
        model = load_embedded_metric_stage().moge.model
        sc = SynthConfig()
        rgb, depth = frame_pool(TEST_SEED, 32, sc)
        print(json.dumps({"synthetic_heldout": evaluate(model, rgb, depth, frame_intrinsics(TEST_SEED, 32, sc)),
                          "real_moge2_alone": evaluate_real_frames(model)}))
        return 0
    cfg = config_from_args(MoGe2TrainConfig, args)
    trainer = MoGe2Trainer(cfg, log=tqdm.write)
    trainer.run(args.until)
    if args.export and trainer.step >= cfg.steps:
        cmd = (f"python -m ppd_ros.train.moge2_small --out {cfg.out} --steps {cfg.steps} --batch {cfg.batch} "
               f"--seed {cfg.seed} --scale-target {cfg.scale_target} --threads 1 --export {args.export}")
        print(json.dumps(trainer.export(args.export, cmd)["metrics"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
