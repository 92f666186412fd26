"""Video pipeline (PPVDPipeline) in both modes: exact chunked windows and streaming frames.

Per stage (synchronised wall time of the real pipeline's calls, wrapped on the instance): preprocess,
π3 semantics, each DiT step, alignment, post-process; in one extra detail pass also the temporal and
RGTP blocks (a device sync per block, so those runs are kept apart from the timed ones). Exact mode:
ms per window and frames/s throughput; streaming: latency per frame (arrival -> result, the result of
a push is that frame's), ordinary and reference-refresh frames apart. State memory (tensor bytes),
peak RSS / CUDA memory, FLOPs counted on the meta device for one window and one streamed frame.

Example (CPU, reduced): python bench/bench_video.py --height 128 --width 128 --frames 29 --threads 1
Example (GPU, full size): python bench/bench_video.py --preset ppvd_dit_video --semantics-preset pi3 \
    --device cuda --dtype bfloat16 --height 512 --width 512 --steps 4
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
from collections import defaultdict
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (bench/ has no package; common puts the repo on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppd_ros.config import DiTVideoConfig, InferenceConfig, Pi3Config, preset, reduced_dit_video  # noqa: E402
from ppd_ros.errors import ConfigError  # noqa: E402
from ppd_ros.flops import count_flops  # noqa: E402
from ppd_ros.models.dit_video import DiT_Video  # noqa: E402
from ppd_ros.models.pi3 import GlobalKV, Pi3Semantic  # noqa: E402
from ppd_ros.pipelines import video_chunked, video_stream  # noqa: E402
from ppd_ros.pipelines.video import PPVDPipeline  # noqa: E402

REDUCED = "reduced"  # default DiT preset: reduced_dit_video(64, 4, 2, 2 * π3 dim) at the bench's resolution
BLOCKS = ("temporal_blocks", "rgtp_blocks")


class Stages:
    """Adds each wrapped call's synchronised ms to a named stage; ``take()`` returns and clears them."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.ms, self.blocks = device, defaultdict(float), False
        self.undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, attr: str, name: Callable[[tuple], str | None], block: bool = False) -> None:
        fn = getattr(owner, attr)

        def wrapper(*a: object, **k: object) -> object:
            key = name(a) if (self.blocks or not block) else None
            if key is None:
                return fn(*a, **k)
            ms, out = common.timed(lambda: fn(*a, **k), self.device)
            self.ms[key] += ms
            return out
        setattr(owner, attr, wrapper)
        self.undo.append((owner, attr, fn))

    def take(self) -> dict[str, float]:
        out, self.ms = dict(self.ms), defaultdict(float)
        return out

    def restore(self) -> None:  # module-level functions are patched too: put them back
        for owner, attr, fn in reversed(self.undo):
            setattr(owner, attr, fn) if isinstance(owner, type(sys)) else delattr(owner, attr)


def instrument(pipe: PPVDPipeline, stages: Stages) -> None:
    n, rgtp = [0], pipe.dit.cfg.rgtp_from

    def step_name(_: tuple) -> str:  # every sample() runs exactly ``steps`` denoiser calls
        n[0] += 1
        return f"dit_step_{(n[0] - 1) % pipe.cfg.steps}"
    for owner, attr, name in ((pipe, "prepare", "preprocess"), (pipe, "to_output", "postprocess"),
                              (pipe.encoder, "forward_semantics", "semantics"),
                              (pipe.encoder, "forward_semantics_with_cache", "semantics"),
                              (video_chunked, "align_to_anchors", "alignment"),
                              (video_chunked, "next_anchors", "alignment"), (video_stream, "fit_scale_shift", "alignment")):
        stages.wrap(owner, attr, lambda _, name=name: name)
    stages.wrap(pipe.dit, "forward", step_name)
    stages.wrap(pipe.dit, "temporal_block", lambda _: "temporal_blocks", block=True)
    stages.wrap(pipe.dit, "spatial_block", lambda a: "rgtp_blocks" if a[0] >= rgtp else None, block=True)


def build(args: argparse.Namespace, env: common.Env) -> PPVDPipeline:
    pcfg: Pi3Config = preset(args.semantics_preset)
    s = args.resolution or args.height
    dcfg = reduced_dit_video(64, 4, 2, 2 * pcfg.dim, input_size=s) if args.preset == REDUCED else preset(args.preset)
    if not isinstance(dcfg, DiTVideoConfig):
        raise ConfigError(f"{args.preset} is not a DiT_Video preset")
    dcfg = dataclasses.replace(dcfg, input_size=s)
    if dcfg.semantics_dim != 2 * pcfg.dim:
        raise ConfigError(f"{args.preset} fuses {dcfg.semantics_dim}-wide semantics, "
                          f"{args.semantics_preset} gives {2 * pcfg.dim}")
    video = dataclasses.replace(preset("ppvd_video"), resolution=s)
    dit = common.build_random(lambda: DiT_Video(dcfg), env.device, args.seed)
    enc = common.build_random(lambda: Pi3Semantic(pcfg), env.device, args.seed + 1)
    cfg = InferenceConfig(steps=args.steps, device=str(env.device), dtype=args.dtype)
    pipe = PPVDPipeline(dit, enc, cfg, video)
    if args.compile:
        pipe.dit.forward = torch.compile(pipe.dit.forward, mode=args.compile_mode)
    return pipe


def frames_for(args: argparse.Namespace, n: int) -> list[np.ndarray]:
    """A slowly panning random texture (no scene cut: consecutive frames share most pixels)."""
    rng = np.random.default_rng(args.seed)
    base = rng.integers(0, 256, size=(args.height, args.width + n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, i:i + args.width]) for i in range(n)]


def run_exact(pipe: PPVDPipeline, frames: list[np.ndarray], stages: Stages) -> dict[str, object]:
    st, windows, total = pipe.new_stream("exact"), [], 0.0
    calls = [lambda f=f, i=i: pipe.push(st, f, i) for i, f in enumerate(frames)] + [lambda: pipe.flush(st)]
    for k, call in enumerate(calls):
        ms, res = common.timed(call, pipe.device)
        total += ms
        if res:  # this push ran a window: its stages include the buffered frames' preprocess
            windows.append({"ms": ms, "published": len(res), "stages": stages.take(), "flush": k == len(frames)})
    state_bytes = sum(t.numel() * t.element_size() for t in (st.images, st.noise)) + \
        (st.anchors.nbytes if st.anchors is not None else 0)
    return {"windows": windows, "total_ms": total, "state_bytes": state_bytes}


def run_stream(pipe: PPVDPipeline, frames: list[np.ndarray], stages: Stages) -> dict[str, object]:
    st, rows = pipe.new_stream("stream"), []
    for i, f in enumerate(frames):
        epoch = st.epoch
        ms, _ = common.timed(lambda: pipe.push(st, f, i), pipe.device)  # arrival -> result of this frame
        kind = "start" if i == 0 else "refresh" if st.epoch != epoch else "frame"
        rows.append({"ms": ms, "kind": kind, "stages": stages.take()})
    return {"frames": rows, "state_bytes": st.nbytes}


def med(rows: list[dict], key: str = "ms") -> float:
    return round(statistics.median(r[key] for r in rows), 3) if rows else float("nan")


def stage_medians(rows: list[dict], keys: tuple[str, ...] = ()) -> dict[str, float]:
    keys = keys or tuple(sorted({k for r in rows for k in r["stages"]}))
    return {k: round(statistics.median(r["stages"].get(k, 0.0) for r in rows), 3) for k in keys}


def count(args: argparse.Namespace, pipe: PPVDPipeline) -> dict[str, int]:
    """FLOPs on meta: one exact window, one streamed frame (steady state, full caches), one reference pass."""
    dcfg, pcfg, v = pipe.dit.cfg, pipe.encoder.cfg, pipe.video
    s, g, r = v.resolution, v.resolution // pcfg.semantic_stride, v.num_refs
    with torch.device("meta"):
        dit, enc = DiT_Video(dcfg).to("meta"), Pi3Semantic(pcfg).to("meta")  # tables built from numpy: move
        t = torch.tensor(500, dtype=torch.int32)
    st = video_stream.allocate_stream_state(dcfg, pcfg, v, args.steps, torch.empty(v.window, 1, s, s, device="meta"),
                                            "meta", torch.float32)
    st.num_refs, st.ring_count = r, v.temporal_frames

    def cost(n: int, past: GlobalKV | None, ctx: object) -> tuple[int, int]:
        imgs = torch.empty(n, 3, s, s, device="meta")
        sem_f = count_flops(lambda: enc.forward_semantics_with_cache(imgs, past) if ctx else enc.forward_semantics(imgs))
        x, sem = torch.empty(n, dcfg.in_channels, s, s, device="meta"), torch.empty(n, g * g, dcfg.semantics_dim, device="meta")
        return sem_f, count_flops(lambda: dit(x, sem, t, ctx))
    with torch.no_grad():
        w_sem, w_step = cost(v.window, None, None)
        f_sem, f_step = cost(1, GlobalKV(st.pi3_keys, st.pi3_values), video_stream._FrameContext(st, dcfg))
        r_sem, r_step = cost(r, None, video_stream._RefPassContext(st, dcfg))
    return {"window_semantics": w_sem, "window_dit_step": w_step, "window": w_sem + args.steps * w_step,
            "frame_semantics": f_sem, "frame_dit_step": f_step, "frame": f_sem + args.steps * f_step,
            "refpass": r_sem + args.steps * r_step,  # and per frame with the refresh cost spread over its epoch:
            "frame_amortised": f_sem + args.steps * f_step + (r_sem + args.steps * r_step) // v.refresh_every}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = common.base_parser(__doc__.splitlines()[0], preset=REDUCED, size=128)
    ap.set_defaults(semantics_preset="fixture_pi3_semantics_small", repeat=1)
    ap.add_argument("--resolution", type=int, default=0, help="working side (frames are stretched); 0: --height")
    ap.add_argument("--frames", type=int, default=29, help="frames per timed stream (29 = two official windows)")
    ap.add_argument("--modes", default="exact,stream", help="comma list of exact, stream")
    ap.add_argument("--no-blocks", action="store_true", help="skip the per-block detail pass")
    args = ap.parse_args(argv)
    if args.cudagraph:
        raise ConfigError("--cudagraph is not supported by the video bench (per-frame contexts run Python)")
    env = common.setup(args)
    pipe, stages = build(args, env), Stages(env.device)
    instrument(pipe, stages)
    v, flops = pipe.video, count(args, pipe)
    peak = common.peak_tflops(env.device, pipe.dtype, args.peak_tflops)
    record: dict[str, object] = {"bench": "video", "preset": args.preset, "semantics_preset": args.semantics_preset,
                                 "height": args.height, "width": args.width, "resolution": v.resolution,
                                 "steps": args.steps, "dtype": str(pipe.dtype), "compile": args.compile,
                                 "window": v.window, "num_refs": v.num_refs, "refresh_every": v.refresh_every,
                                 "flops": flops, "modes": {}, **env.info}
    frames = frames_for(args, max(args.frames, v.window))
    try:
        for mode in args.modes.split(","):
            record["modes"][mode] = run_mode(mode, pipe, frames, stages, flops, args, peak)
    finally:
        stages.restore()
    record["peak_rss_mb"] = round(common.peak_rss_mb(), 1)
    print_report(record)
    common.emit(record, args.json_out)
    return record


def run_mode(mode: str, pipe: PPVDPipeline, frames: list[np.ndarray], stages: Stages, flops: dict[str, int],
             args: argparse.Namespace, peak: float | None) -> dict[str, object]:
    run, n = {"exact": run_exact, "stream": run_stream}[mode], pipe.video.window
    common.reset_cuda_peak(pipe.device)
    for _ in range(args.warmup):
        run(pipe, frames[:n], stages)
    out = [run(pipe, frames[: args.frames], stages) for _ in range(max(args.repeat, 1))]
    detail = None
    if not (args.no_blocks or args.compile):  # a device sync per block: timed apart
        stages.blocks = True
        detail = run(pipe, frames[:n], stages)
        stages.blocks = False
    rec = (exact_summary if mode == "exact" else stream_summary)(out, detail, flops, args, peak)
    rec.update(cuda_peak_mb=common.cuda_peak_mb(pipe.device), state_bytes=out[0]["state_bytes"])
    return rec


def dit_rates(st: dict[str, float], steps: int, flops: int, peak: float | None) -> dict[str, float | None]:
    return common.rates(flops, statistics.median(st.get(f"dit_step_{i}", float("nan")) for i in range(steps)), peak)


def exact_summary(out: list[dict], detail: dict | None, flops: dict, args: argparse.Namespace,
                  peak: float | None) -> dict[str, object]:
    wins = [w for o in out for w in o["windows"]]
    full = [w for w in wins if not w["flush"]] or wins  # a flushed window publishes only its real frames
    later = [w for o in out for w in o["windows"][1:] if not w["flush"]] or full  # steady: after window 0
    published = sum(w["published"] for o in out for w in o["windows"])
    st = stage_medians(later)
    rec = {"ms_per_window": med(later), "first_window_ms": med([o["windows"][0] for o in out]),
           "windows": len(wins), "frames_published": published,
           "fps": round(published * 1e3 / sum(o["total_ms"] for o in out), 3),
           "fps_steady": round(statistics.median(w["published"] * 1e3 / w["ms"] for w in later), 3),
           "wait_frames_max": max(w["published"] for w in later) - 1,  # a window's first new frame waits
           "stages_ms_per_window": st, "dit_step": dit_rates(st, args.steps, flops["window_dit_step"], peak),
           "window_rates": common.rates(flops["window"], med(later), peak)}
    if detail is not None:
        rec["blocks_ms_per_window"] = stage_medians(detail["windows"][-1:], BLOCKS)
    return rec


def stream_summary(out: list[dict], detail: dict | None, flops: dict, args: argparse.Namespace,
                   peak: float | None) -> dict[str, object]:
    rows = [r for o in out for r in o["frames"][1:]]  # the stream's first frame apart
    plain, refresh = [r for r in rows if r["kind"] == "frame"], [r for r in rows if r["kind"] == "refresh"]
    mean = statistics.fmean(r["ms"] for r in rows)
    st = stage_medians(plain)
    rec = {"latency_ms": med(plain), "latency_ms_max": round(max(r["ms"] for r in rows), 3),
           "refresh_frame_ms": med(refresh), "start_frame_ms": med([o["frames"][0] for o in out]),
           "mean_ms_per_frame": round(mean, 3), "fps": round(1e3 / mean, 3), "frames": len(rows) + len(out),
           "refresh_frames": len(refresh), "latency_frames": 0, "stages_ms_per_frame": st,
           "stages_ms_refresh_frame": stage_medians(refresh),
           "dit_step": dit_rates(st, args.steps, flops["frame_dit_step"], peak),
           "frame_rates": common.rates(flops["frame"], med(plain), peak)}
    if detail is not None:
        rec["blocks_ms_per_frame"] = stage_medians([r for r in detail["frames"] if r["kind"] == "frame"], BLOCKS)
    return rec


def print_report(rec: dict[str, object]) -> None:
    f = rec["flops"]
    print(f"PPVD video {rec['preset']} + {rec['semantics_preset']} at {rec['resolution']}² ({rec['height']}x"
          f"{rec['width']} frames), {rec['steps']} steps, {rec['dtype']}, on {rec['device_name']} ({rec['threads']} "
          f"threads, load {rec['load_avg_1m']}); counted GFLOP: window {f['window'] / 1e9:.2f}, streamed frame "
          f"{f['frame'] / 1e9:.2f} ({f['frame_amortised'] / 1e9:.2f} with refreshes), reference pass {f['refpass'] / 1e9:.2f}")
    for mode, m in rec["modes"].items():
        unit = "window" if mode == "exact" else "frame"
        print(f"[{mode}] ms per {unit} (median): " + ", ".join(f"{k} {v:.2f}" for k, v in m[f"stages_ms_per_{unit}"].items()))
        if f"blocks_ms_per_{unit}" in m:
            print(f"[{mode}] detail pass, synced per block, all steps: "
                  + ", ".join(f"{k} {v:.2f} ms" for k, v in m[f"blocks_ms_per_{unit}"].items()))
        if mode == "exact":
            print(f"[exact] {m['ms_per_window']:.1f} ms per steady window (first {m['first_window_ms']:.1f}); "
                  f"{m['fps']:.2f} frames/s over the stream, {m['fps_steady']:.2f} steady; a window's first "
                  f"frame waits {m['wait_frames_max']} frames")
        else:
            print(f"[stream] latency {m['latency_ms']:.1f} ms per frame (max {m['latency_ms_max']:.1f}, refresh frame "
                  f"{m['refresh_frame_ms']:.1f}, start {m['start_frame_ms']:.1f}); mean {m['mean_ms_per_frame']:.1f} ms "
                  f"= {m['fps']:.2f} frames/s")
        print(f"[{mode}] DiT step {m['dit_step']['tflops']:.3f} TFLOP/s (MFU {m['dit_step']['mfu']}); state "
              f"{m['state_bytes'] / 2**20:.2f} MiB; CUDA peak {m['cuda_peak_mb']} MiB")
    print(f"peak RSS {rec['peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
