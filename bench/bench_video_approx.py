"""How good is streaming PPVD? Error vs exact chunked mode, and temporal consistency of three methods.

On a synthetic moving sequence (a static textured background and a bright square sliding across it)
the script runs
  * per-frame image PPD (fixture-size PPD models, ``shared/fixtures/ppd/e2e_small``),
  * exact chunked PPVD (fixture-size PPVD models, ``shared/fixtures/ppvd/video_pipeline_small``),
  * streaming PPVD (same models, ``new_stream("stream")``),
and prints
  * per-frame error of streaming vs exact: mean |S_t - E_t| / std(E_0), raw and after a per-frame
    affine fit (the affine-invariant part);
  * temporal consistency: every frame is affinely fitted to the method's frame 0 on the static pixels
    (best case for a per-frame model), then the mean frame-to-frame change on static pixels, in units
    of frame 0's static std ("flicker"); for the PPVD modes also the same figure on the published
    (chained) outputs without the per-frame fit.
Weights are the fixtures' random ones: the numbers measure the *procedure*, not depth quality.

Example (CPU, ~30 min on 2 busy cores): python bench/bench_video_approx.py --frames 32
Example (GPU, released weights): python bench/bench_video_approx.py --frames 96 --device cuda \
    --dtype bfloat16 --ppvd-checkpoints ppvd.pth pi3.safetensors --ppd-checkpoints ppd.pth da2.pth
Smoke (CPU, tiny random models at 32 px): python bench/bench_video_approx.py --tiny --frames 20
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402,F401  (puts the repo on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from ppd_ros.config import InferenceConfig, Pi3Config, VideoConfig, reduced_dit_video  # noqa: E402
from ppd_ros.pipelines.video import PPVDPipeline  # noqa: E402
from ppd_ros.pipelines.video_align import fit_scale_shift  # noqa: E402

SHARED = Path(os.environ.get("PPD_SHARED", common.REPO.parent / "shared"))


def moving_sequence(n: int, h: int, w: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (H, W, 3) uint8 and a (n, H, W) bool mask of pixels the moving square never touches
    in frames t-1 and t (the static region for frame-to-frame change)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([128 + 60 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], -1)
    bg = np.clip(bg + rng.normal(0, 8, bg.shape), 0, 255).astype(np.uint8)
    side = max(4, min(h, w) // 4)
    frames, covered = [], []
    for t in range(n):
        f = bg.copy()
        x = int(round((w - side) * (0.5 + 0.5 * np.sin(t / 6.0))))
        y = (h - side) // 2
        f[y:y + side, x:x + side] = (240, 200, 40)
        m = np.zeros((h, w), bool)
        m[y:y + side, x:x + side] = True
        frames.append(f)
        covered.append(m)
    static = np.stack([~(covered[t] | covered[max(t - 1, 0)]) for t in range(n)])
    return frames, static


def build_ppvd(args: argparse.Namespace, video: VideoConfig) -> PPVDPipeline:
    cfg = InferenceConfig(steps=4, device=args.device, dtype=args.dtype)
    if args.tiny:
        from ppd_ros.models.dit_video import DiT_Video
        from ppd_ros.models.pi3 import Pi3Semantic
        torch.manual_seed(0)
        dit = DiT_Video(reduced_dit_video(16, 4, 2, 32, input_size=32))
        enc = Pi3Semantic(Pi3Config(dim=16, num_heads=2, enc_depth=1, dec_depth=2, img_size=28))
        for p in list(dit.parameters()) + list(enc.parameters()):
            if p.requires_grad:
                p.data.normal_(0, 0.3)
        return PPVDPipeline(dit, enc, cfg, VideoConfig(**{**vars_of(video), "resolution": 32}))
    if args.ppvd_checkpoints:
        ppvd, pi3 = args.ppvd_checkpoints
        return PPVDPipeline.from_checkpoints(ppvd, pi3, cfg, video)
    from ppd_ros.parity.ppvd import build_video_pipeline
    fx = Path(args.ppvd_fixture)
    meta = json.loads((fx / "meta.json").read_text())
    cpu = build_video_pipeline(meta, load_file(str(fx / "weights.safetensors")))
    return PPVDPipeline(cpu.dit, cpu.encoder, cfg, video)


def vars_of(video: VideoConfig) -> dict:
    return {k: getattr(video, k) for k in video.__dataclass_fields__}


def image_ppd(args: argparse.Namespace, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Per-frame image PPD on the same frames (fixture-size models; tiny mode skips it)."""
    from ppd_ros.parity import Fixture
    from ppd_ros.parity.ppd import _strip, build_da2, build_dit
    from ppd_ros.pipelines.image import PPDPipeline
    area = 32 * 32 if args.tiny else 512 * 512
    cfg = InferenceConfig(steps=4, device=args.device, dtype=args.dtype, target_area=area)
    if args.ppd_checkpoints:
        pipe = PPDPipeline.from_checkpoints(*args.ppd_checkpoints, cfg=cfg)
    else:
        fx = Fixture(Path(args.ppd_fixture))
        enc, dit = build_da2(fx, _strip(fx.weights, "sem_encoder.")), build_dit(fx, _strip(fx.weights, "dit."))
        pipe = PPDPipeline(dit, enc, cfg)
    state = pipe.new_stream(seed=0)  # one generator per stream: fresh noise per frame, as run.py
    return [pipe.push(state, f)[0].depth for f in frames]


def run_ppvd(pipe: PPVDPipeline, frames: list[np.ndarray], mode: str) -> tuple[list[np.ndarray], float]:
    state = pipe.new_stream(mode, seed=0)
    out, t0 = [], time.perf_counter()
    for i, f in enumerate(frames):
        out += [r.depth for r in pipe.push(state, f, stamp=i)]
    out += [r.depth for r in pipe.flush(state)]
    return out, (time.perf_counter() - t0) * 1e3 / len(frames)


def flicker(seq: list[np.ndarray], static: np.ndarray, per_frame_fit: bool) -> float:
    """Mean frame-to-frame |change| on static pixels, in units of frame 0's static std."""
    ref = seq[0][static[0]]
    unit = float(ref.std()) or 1.0
    fitted = []
    for t, d in enumerate(seq):
        if per_frame_fit:
            s, b = fit_scale_shift(d[static[t]], seq[0][static[t]])
            d = s * d + b
        fitted.append(d)
    return float(np.mean([np.abs(fitted[t] - fitted[t - 1])[static[t]].mean() for t in range(1, len(seq))]) / unit)


def stream_error(stream: list[np.ndarray], exact: list[np.ndarray]) -> dict[str, float]:
    unit = float(exact[0].std()) or 1.0
    raw = [float(np.abs(s - e).mean()) / unit for s, e in zip(stream, exact)]
    fit = []
    for s, e in zip(stream, exact):
        a, b = fit_scale_shift(s, e)
        fit.append(float(np.abs(a * s + b - e).mean()) / unit)
    return {"raw_mean": float(np.mean(raw)), "raw_max": float(np.max(raw)),
            "affine_mean": float(np.mean(fit)), "affine_max": float(np.max(fit))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--height", type=int, default=60)
    ap.add_argument("--width", type=int, default=80)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--ppvd-fixture", default=str(SHARED / "fixtures/ppvd/video_pipeline_small"))
    ap.add_argument("--ppd-fixture", default=str(SHARED / "fixtures/ppd/e2e_small"))
    ap.add_argument("--ppvd-checkpoints", nargs=2, metavar=("PPVD_PTH", "PI3_SAFETENSORS"),
                    help="released checkpoints instead of the fixture's random weights")
    ap.add_argument("--ppd-checkpoints", nargs=2, metavar=("PPD_PTH", "DA2_PTH"),
                    help="released image-model checkpoints instead of the fixture's")
    ap.add_argument("--tiny", action="store_true", help="tiny random models at 32 px (CPU smoke run)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    frames, static = moving_sequence(args.frames, args.height, args.width)
    video = VideoConfig(scene_cut_threshold=0.0)  # the synthetic sequence has no cuts
    pipe = build_ppvd(args, video)
    exact, ms_exact = run_ppvd(pipe, frames, "exact")
    stream, ms_stream = run_ppvd(pipe, frames, "stream")
    t0 = time.perf_counter()
    image = image_ppd(args, frames)
    ms_image = (time.perf_counter() - t0) * 1e3 / len(frames)
    err = stream_error(stream, exact)
    rows = {"image_ppd": (image, ms_image), "ppvd_exact": (exact, ms_exact), "ppvd_stream": (stream, ms_stream)}
    res = {"device": str(pipe.device), "dtype": str(pipe.dtype), "frames": args.frames,
           "size": [args.height, args.width], "tiny": args.tiny, "stream_vs_exact": err}
    print(f"{'method':<12} {'flicker(fit)':>13} {'flicker(raw)':>13} {'ms/frame':>10}")
    for name, (seq, ms) in rows.items():
        fit = flicker(seq, static, True)
        raw = flicker(seq, static, False) if name != "image_ppd" else None  # per-frame model: no chain
        res[name] = {"flicker_fit": fit, "flicker_raw": raw, "ms_per_frame": ms}
        print(f"{name:<12} {fit:>13.4f} {raw if raw is not None else float('nan'):>13.4f} {ms:>10.1f}")
    print("streaming vs exact (per frame, / std of exact frame 0): "
          + ", ".join(f"{k} {v:.4f}" for k, v in err.items()))
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
