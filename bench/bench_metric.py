"""MoGe-2 metric stage: components, and PPD + metric per frame with a shared or an unshared encoder.

Components (median ms, interleaved): MoGe-2 ViT encoder at its token-budget grid, neck + heads,
focal + shift solve (uncalibrated) and shift-only solve (calibrated FoV), the official RANSAC
``log(1+d) ~ a*rel + b`` alignment, applying the fit, back-projection + cloud packing (xyz+rgb).
Per frame (a calibrated camera: MoGe-2 gets its FoV and solves the shift only; random weights give no
usable focal): PPD alone (MoGe-2 semantics), PPD + metric stage with its own MoGe-2 pass (unshared),
PPD + metric sharing one encoder pass (``ppd_with_moge2``), and the shared one refreshing the scale
every ``--refresh-every`` frames (ms per frame averaged over that cycle). FLOPs counted on meta.

Example (CPU, reduced): python bench/bench_metric.py --height 256 --width 320 --threads 1
Example (GPU, full size): python bench/bench_metric.py --preset moge2_vitl_normal --device cuda \
    --dtype bfloat16 --height 512 --width 512
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (bench/ has no package; common puts the repo on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppd_ros.config import InferenceConfig, MoGe2Config, preset  # noqa: E402
from ppd_ros.errors import ConfigError  # noqa: E402
from ppd_ros.flops import count_flops, dit_step_flops  # noqa: E402
from ppd_ros.geometry import apply_log_depth_fit, fit_log_depth_ransac  # noqa: E402
from ppd_ros.intrinsics import CameraIntrinsics  # noqa: E402
from ppd_ros.models import DiT  # noqa: E402
from ppd_ros.models.moge2 import MoGe2Model, semantics_grid, token_grid  # noqa: E402
from ppd_ros.pipelines.image import PPDPipeline  # noqa: E402
from ppd_ros.pipelines.metric import MetricConfig, MetricStage, SharedMoGe2, ppd_with_moge2  # noqa: E402
from ppd_ros.pipelines.moge import MoGe2Runner, num_tokens_for_level, postprocess  # noqa: E402
from ppd_ros.pointcloud import depth_to_cloud  # noqa: E402
from ppd_ros.runtime import autocast  # noqa: E402


def flops(mcfg: MoGe2Config, dcfg, h: int, w: int, grid: tuple[int, int]) -> dict[str, int]:
    with torch.device("meta"):
        model = MoGe2Model(mcfg).to("meta")  # the mean/std buffers are built from numpy
        img = torch.empty(1, 3, h, w)
    with torch.no_grad():
        enc = count_flops(lambda: model.encode(img, grid))
        enc_sem = count_flops(lambda: model.encode(img, semantics_grid(h, w)))
        heads = count_flops(lambda: model.decode(model.encode(img, grid), (h, w))) - enc
    return {"moge_encoder": enc, "moge_encoder_semantics_grid": enc_sem, "moge_heads": heads,
            "ppd_dit_step": dit_step_flops(dcfg, h, w)}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = common.base_parser(__doc__.splitlines()[0], preset="fixture_moge2_tiny", size=256)
    ap.add_argument("--dit-preset", default="auto",
                    help="PPD DiT for the per-frame runs (auto: ppd_dit with full MoGe-2, else fixture_ppd_e2e_dit)")
    ap.add_argument("--refresh-every", type=int, default=4, help="MoGe-2 + RANSAC every N frames (shared variant)")
    ap.add_argument("--resolution-level", type=float, default=9, help="MoGe-2 token budget level (unshared runs)")
    args = ap.parse_args(argv)
    env = common.setup(args)
    dev, h, w = env.device, args.height, args.width
    if h % 16 or w % 16:
        raise ConfigError(f"height and width must be multiples of 16, got {h}x{w}")
    mcfg: MoGe2Config = preset(args.preset)
    dname = args.dit_preset if args.dit_preset != "auto" else \
        "ppd_dit" if args.preset.startswith("moge2_") else "fixture_ppd_e2e_dit"
    dcfg = dataclasses.replace(preset(dname), semantics_dim=mcfg.dim_out)
    moge = common.build_random(lambda: MoGe2Model(mcfg), dev, args.seed)
    with torch.no_grad():  # a usable random map: mask valid everywhere (not a degenerate, empty frame)
        moge.mask_head.output_blocks[-1].bias.fill_(4.0)
    dit = common.build_random(lambda: DiT(dcfg), dev, args.seed + 1)
    fp16 = env.dtype != torch.float32 and dev.type == "cuda"  # MoGe-2 official fp16; slow emulation on CPU
    cfg = InferenceConfig(steps=args.steps, device=str(dev), dtype=args.dtype, target_area=h * w)
    mc = MetricConfig()
    ppd_u = PPDPipeline(dit, SharedMoGe2(moge), cfg)  # PPD's semantics pass; the metric stage runs its own
    stage_u = MetricStage(MoGe2Runner(moge, args.resolution_level, use_fp16=fp16), mc)
    ppd_s, stage_s = ppd_with_moge2(dit, moge, cfg, mc)
    # Shared: the encoding comes from PPD's autocast; fp16 decoding of a bf16 encoding fails in autocast
    # ("Unexpected floating ScalarType"), so the shared decode runs fp16 only when PPD does.
    stage_s.moge.use_fp16 = env.dtype == torch.float16
    stage_r = MetricStage(ppd_s.encoder, dataclasses.replace(mc, refresh_every=args.refresh_every))
    rng = np.random.default_rng(args.seed)
    frames = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for _ in range(2)]
    nxt = itertools.cycle(frames)
    camera = CameraIntrinsics.from_pinhole(w, h, 0.8 * w, 0.8 * w, (w - 1) / 2, (h - 1) / 2)
    states = {k: s.new_state() for k, s in (("u", stage_u), ("s", stage_s), ("r", stage_r))}

    def frame(pipe: PPDPipeline, stage: MetricStage | None, key: str = "") -> Callable[[], object]:
        def run() -> object:
            rgb = next(nxt)
            pipe.encoder.clear()  # no encoding reused from an earlier frame; only PPD -> metric of this one
            res = pipe(rgb)
            return stage(states[key], res, rgb, camera) if stage is not None else res
        return run

    def cycle() -> None:  # ``refresh_every`` frames through the shared pipeline, one MoGe-2 refresh among them
        for _ in range(args.refresh_every):
            frame(ppd_s, stage_r, "r")()

    # component inputs, from one real frame through the pieces
    image = torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float().div(255).to(dev)
    grid = token_grid(h, w, num_tokens_for_level(args.resolution_level, mcfg.num_tokens_range))
    with torch.inference_mode(), autocast(dev, env.dtype):
        enc = moge.encode(image, grid)
        raw = moge.decode(enc, (h, w))
    pred = postprocess(raw, None)
    rel = frame(ppd_s, None)().depth_model
    moge_d, mask = pred.depth[0].cpu().numpy(), pred.mask[0].cpu().numpy()
    fit = fit_log_depth_ransac(rel, moge_d, mask, np.random.RandomState(666))
    metric = apply_log_depth_fit(rel, fit.a, fit.b, fit.max_depth)
    fov = float(np.degrees(2 * np.arctan(w / (2 * 0.8 * w))))

    def infer(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode(), autocast(dev, env.dtype):
                return fn()
        return run
    components = {"encoder": infer(lambda: moge.encode(image, grid)), "heads": infer(lambda: moge.decode(enc, (h, w))),
                  "focal_shift_solve": lambda: postprocess(raw, None), "shift_solve_fov": lambda: postprocess(raw, fov),
                  "ransac_alignment": lambda: fit_log_depth_ransac(rel, moge_d, mask, np.random.RandomState(666)),
                  "apply_fit": lambda: apply_log_depth_fit(rel, fit.a, fit.b, fit.max_depth),
                  "backproject_pack": lambda: depth_to_cloud(metric, camera.K, frames[0])}
    comp = common.measure_interleaved(components, dev, args.warmup, args.repeat)
    common.reset_cuda_peak(dev)
    runs0 = {k: getattr(s, "encoder_runs", 0) for k, s in (("u", ppd_u.encoder), ("s", ppd_s.encoder))}
    variants = {"ppd": frame(ppd_u, None), "ppd+metric_unshared": frame(ppd_u, stage_u, "u"),
                "ppd+metric_shared": frame(ppd_s, stage_s, "s"),
                f"ppd+metric_shared_every{args.refresh_every}": cycle}
    per = common.measure_interleaved(variants, dev, args.warmup, args.repeat)
    n_calls = args.warmup + args.repeat
    enc_runs = {"unshared_ppd_semantics": (ppd_u.encoder.encoder_runs - runs0["u"]) / (2 * n_calls),
                "shared": (ppd_s.encoder.encoder_runs - runs0["s"]) / (n_calls * (1 + args.refresh_every))}
    fl = flops(mcfg, dcfg, h, w, grid)
    peak = common.peak_tflops(dev, env.dtype, args.peak_tflops)
    frame_ms = {k: t.summary() for k, t in per.items()}
    frame_ms[f"ppd+metric_shared_every{args.refresh_every}"] = {
        k: round(v / args.refresh_every, 3) if k.endswith("_ms") else v
        for k, v in frame_ms[f"ppd+metric_shared_every{args.refresh_every}"].items()}
    record = {"bench": "metric", "preset": args.preset, "dit_preset": dname, "height": h, "width": w,
              "steps": args.steps, "dtype": str(env.dtype), "moge_fp16_unshared": fp16,
              "moge_fp16_shared": stage_s.moge.use_fp16, "token_grid": list(grid),
              "semantics_grid": list(semantics_grid(h, w)), "refresh_every": args.refresh_every,
              "components_ms": {k: t.summary() for k, t in comp.items()}, "frame_ms": frame_ms,
              "encoder_runs_per_frame": enc_runs, "fit_branch": fit.branch, "flops": fl,
              "encoder_rates": common.rates(fl["moge_encoder"], comp["encoder"].median, peak),
              "heads_rates": common.rates(fl["moge_heads"], comp["heads"].median, peak),
              "sharing_saves_ms": round(frame_ms["ppd+metric_unshared"]["median_ms"]
                                        - frame_ms["ppd+metric_shared"]["median_ms"], 3),
              "cuda_peak_mb": common.cuda_peak_mb(dev), "peak_rss_mb": round(common.peak_rss_mb(), 1), **env.info}
    print_report(record, args)
    common.emit(record, args.json_out)
    return record


def print_report(rec: dict[str, object], args: argparse.Namespace) -> None:
    f = rec["flops"]
    print(f"MoGe-2 metric stage {rec['preset']} (+ PPD {rec['dit_preset']}) {rec['height']}x{rec['width']}, "
          f"{rec['steps']} steps, {rec['dtype']}, on {rec['device_name']} ({rec['threads']} threads, load "
          f"{rec['load_avg_1m']}); token grid {rec['token_grid']}, shared grid {rec['semantics_grid']}; counted GFLOP: "
          f"encoder {f['moge_encoder'] / 1e9:.2f} (at the shared grid {f['moge_encoder_semantics_grid'] / 1e9:.2f}), "
          f"heads {f['moge_heads'] / 1e9:.2f}, PPD DiT step {f['ppd_dit_step'] / 1e9:.2f}; median of {args.repeat}")
    print(f"{'component':<34}{'median ms':>10}{'min ms':>10}")
    for k, v in rec["components_ms"].items():
        print(f"{k:<34}{v['median_ms']:>10.2f}{v['min_ms']:>10.2f}")
    print(f"{'per frame':<34}{'median ms':>10}{'min ms':>10}")
    for k, v in rec["frame_ms"].items():
        print(f"{k:<34}{v['median_ms']:>10.2f}{v['min_ms']:>10.2f}")
    print(f"sharing the encoder saves {rec['sharing_saves_ms']:.2f} ms per frame; encoder runs per frame "
          f"{rec['encoder_runs_per_frame']}; RANSAC branch {rec['fit_branch']}; peak RSS {rec['peak_rss_mb']:.0f} MiB, "
          f"CUDA peak {rec['cuda_peak_mb']} MiB")


if __name__ == "__main__":
    main()
