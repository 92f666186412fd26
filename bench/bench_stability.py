"""Stream stability and cost: noise policy, step count, warm start and the metric stage, side by side.

    python bench/bench_stability.py                  # full table (CPU, embedded models) + one JSON line
    python bench/bench_stability.py --quick          # 1 seed, 10-frame clips, no full-size column

Data: synthetic clips with exact depth (``ppd_ros.data.clips``: static, pan, fast, cut, zoom; seeds from
``SEED_BASE``, disjoint from training and from bench/eval_video.py), the held-out moving clips of
bench/eval_video.py (``moving``), and a real static-camera video without depth: OpenCV's ``vtest.avi``
(people walking past a fixed camera; BSD-3-Clause per Debian's ``opencv-doc`` copyright file). When it
is not cached in ``bench/.cache/`` (git-ignored) the script fetches it with ``apt-get download
opencv-doc`` + ``dpkg -x`` (say ``--no-real`` to skip). Frames are taken at 128x96 (INTER_AREA).

Metrics per method: aligned AbsRel per frame (moving clips: pan, fast, moving), GT flicker (the
video_eval definition), static-background flicker (``metrics.static_background_flicker``: median
|d_t - d_(t-1)| on pixels whose RGB did not change, over the sequence's p95 - p5), for the relative
output and for the published metric depth; metric-scale jitter (``metrics.scale_jitter``) on static
clips; DiT evaluations, ms per frame (median) and latency (push of a frame -> its result, frames fed
back to back). Metric stage: "per-frame" (smoothing 0, RANSAC generator carried on: as shipped before)
vs the new default MetricConfig. Full-size column: the official PPD architecture with random weights at
128x96, ms per frame of every option on a static clip (same weights, same machine).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit  # noqa: E402
from ppd_ros import metrics  # noqa: E402
from ppd_ros.data.clips import make_clip  # noqa: E402

SEED_BASE = 31_000_000
CACHE = Path(__file__).resolve().parent / ".cache"
VTEST = "usr/share/doc/opencv-doc/examples/data/vtest.avi"
IMAGE_METHODS = {  # name: InferenceConfig overrides on the embedded image pipeline
    "ppd_fresh_s4": dict(noise="fresh", steps=4),  # the official image behaviour (and the shipped node)
    "ppd_fixed_s4": dict(noise="fixed", steps=4),
    "ppd_fixed_s4_warm": dict(noise="fixed", steps=4, warm_start=True, warm_start_step=2),
    "ppd_fixed_s2": dict(noise="fixed", steps=2),
    "ppd_fixed_s2_warm": dict(noise="fixed", steps=2, warm_start=True, warm_start_step=1),
    "ppd_fixed_s1": dict(noise="fixed", steps=1),
}
VIDEO_METHODS = {  # name: (mode, VideoConfig.noise, InferenceConfig overrides)
    "ppvd_exact": ("exact", "fixed", {}),  # official windows (exact keeps the official rows)
    "ppvd_stream_fresh": ("stream", "fresh", {}),  # streaming as shipped before
    "ppvd_stream_fixed": ("stream", "fixed", {}),
    "ppvd_stream_fixed_warm": ("stream", "fixed", dict(warm_start=True, warm_start_step=2)),
    "ppvd_stream_fixed_s1": ("stream", "fixed", dict(steps=1)),
}
MOVING = ("pan", "fast", "moving")
DEFAULT_IMAGE, DEFAULT_STREAM = "ppd_fixed_s1", "ppvd_stream_fixed_s1"  # the embedded stream defaults


def real_video(frames: int, fetch: bool) -> np.ndarray | None:
    """(T, 96, 128, 3) uint8 RGB of vtest.avi, or None when unavailable."""
    import cv2
    path = CACHE / "vtest.avi"
    if not path.exists():
        system = Path("/") / VTEST
        if system.exists():
            path = system
        elif fetch:
            print("fetching vtest.avi: apt-get download opencv-doc (BSD-3-Clause), cached in bench/.cache/")
            CACHE.mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, check=True, capture_output=True)
                deb = next(Path(tmp).glob("opencv-doc_*.deb"))
                subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True)
                (Path(tmp) / "x" / VTEST).rename(CACHE / "vtest.avi")
        else:
            return None
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < frames:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.resize(bgr, (128, 96), interpolation=cv2.INTER_AREA)[..., ::-1])
    return np.stack(out) if out else None


def run_stream(pipe, new_state, rgb: np.ndarray) -> dict:
    """Every frame through ``pipe.push``; results in frame order with per-frame ms and latency."""
    st = new_state()
    res, ms, lat, pushed = {}, [], {}, {}
    for i, f in enumerate(rgb):
        t0 = time.perf_counter()
        pushed[i] = t0
        out = pipe.push(st, f, stamp=i)
        t1 = time.perf_counter()
        ms.append((t1 - t0) * 1e3)
        for r in out:
            res[r.stamp], lat[r.stamp] = r, (t1 - pushed[r.stamp]) * 1e3
    t0 = time.perf_counter()
    for r in pipe.flush(st):
        res[r.stamp], lat[r.stamp] = r, (time.perf_counter() - pushed[r.stamp]) * 1e3
    ms[-1] += (time.perf_counter() - t0) * 1e3
    order = [res[i] for i in range(len(rgb))]
    return {"results": order, "ms": ms, "latency": [lat[i] for i in range(len(rgb))]}


def metric_depths(stage, results: list, rgb: np.ndarray) -> np.ndarray:
    """(T, h, w) published metric depth (+inf/NaN -> NaN) of a stream's results."""
    st = stage.new_state(0)
    out = []
    for r, f in zip(results, rgb):
        try:
            out.append(stage(st, r, f).depth)
        except Exception:  # a dropped frame: nothing published
            out.append(np.full(np.asarray(r.depth_model).shape, np.nan, np.float32))
    d = np.stack(out).astype(np.float64)
    return np.where(np.isfinite(d), d, np.nan)


def _resize_stack(d: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    import cv2
    return np.stack([cv2.resize(x.astype(np.float32), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST) for x in d])


def evaluate(name: str, runs: dict, clips: dict, real: np.ndarray | None, stages: dict) -> dict:
    """Aggregate one method's runs over the clips."""
    from ppd_ros.train.evaluation import frame_metrics
    from ppd_ros.train.video_eval import clip_metrics
    acc: dict[str, list] = {}

    def add(key: str, value: object) -> None:
        acc.setdefault(key, []).append(value)

    for key, run in runs.items():
        kind = key.split(":")[0]
        res = run["results"]
        for r, ms, lat in zip(res[1:], run["ms"][1:], run["latency"][1:]):  # the first frame is always cold
            add("dit_evals", r.dit_evals), add("warm_share", r.warm), add("ms", ms), add("lat", lat)
        preds = [r.depth for r in res]
        rgb = real if kind == "real" else clips[key].rgb
        if kind in MOVING:
            cm = clip_metrics(preds, clips[key].depth)
            add("absrel", cm["absrel"]), add("gt_flicker", cm["flicker"])
        if kind == "cut":
            clip = clips[key]
            per = [frame_metrics(p, g)["absrel"] for p, g in zip(preds, clip.depth)]
            add("cut_recovery", per[clip.event] / float(np.nanmean(per[clip.event + 2:])))
        if kind in ("static", "real"):
            add(f"{kind}_flicker", metrics.static_background_flicker(np.stack(preds), rgb))
        for sname, stage in stages.items():
            if kind not in ("static", "real", "zoom", "fast"):
                continue
            md = metric_depths(stage, res, rgb)
            if kind in ("zoom", "fast"):
                gt = _resize_stack(clips[key].depth, md.shape[1:])
                add(f"{kind}[{sname}]", [metrics.abs_rel(np.nan_to_num(m, nan=-1.0), g, np.isfinite(m))
                                       for m, g in zip(md, gt)])
                continue
            small = rgb if rgb.shape[1:3] == md.shape[1:] else \
                np.stack([_resize_stack(rgb[..., c], md.shape[1:]) for c in range(3)], -1).astype(np.uint8)
            add(f"metric_{kind}_flicker[{sname}]", metrics.static_background_flicker(md, small))
            if kind == "static":
                add(f"scale_jitter[{sname}]", metrics.scale_jitter(md))
    mean = lambda k: float(np.nanmean(acc[k])) if acc.get(k) else float("nan")  # noqa: E731
    med = lambda k: float(statistics.median(acc[k])) if acc.get(k) else float("nan")  # noqa: E731
    row = {"method": name, "absrel": mean("absrel"), "gt_flicker": mean("gt_flicker"),
           "static_flicker": mean("static_flicker"), "real_static_flicker": mean("real_flicker"),
           "dit_evals": mean("dit_evals"), "warm_share": mean("warm_share"), "ms_per_frame": med("ms"),
           "latency_ms": med("lat"), "cut_recovery": mean("cut_recovery")}
    for sname in stages:
        row[f"metric_static_flicker[{sname}]"] = mean(f"metric_static_flicker[{sname}]")
        row[f"metric_real_flicker[{sname}]"] = mean(f"metric_real_flicker[{sname}]")
        row[f"scale_jitter[{sname}]"] = mean(f"scale_jitter[{sname}]")
        if acc.get(f"zoom[{sname}]"):  # per frame: the focal length jumps at the middle frame
            row[f"zoom_metric_absrel[{sname}]"] = [round(float(x), 3) for x in np.nanmean(acc[f"zoom[{sname}]"], 0)]
        if acc.get(f"fast[{sname}]"):  # unaligned metric AbsRel on the fast clips: lag shows here
            row[f"fast_metric_absrel[{sname}]"] = float(np.nanmean(acc[f"fast[{sname}]"]))
    return row


def full_size_speed(frames: int, threads: int) -> dict:
    """ms per frame of each option with the official PPD architecture (random weights) at 128x96."""
    from bench.common import build_random
    from ppd_ros.config import InferenceConfig, preset
    from ppd_ros.models import DA2SemanticEncoder, DiT
    from ppd_ros.pipelines import PPDPipeline
    dit = build_random(lambda: DiT(preset("ppd_dit")), torch.device("cpu"), 0)
    enc = build_random(lambda: DA2SemanticEncoder(preset("da2_vitl")), torch.device("cpu"), 1)
    clip = make_clip("static", SEED_BASE + 999, frames + 1)
    out = {}
    for name, kw in IMAGE_METHODS.items():
        cfg = InferenceConfig(target_area=128 * 96, dtype="float32", **kw)
        pipe = PPDPipeline(dit, enc, cfg)
        run = run_stream(pipe, lambda p=pipe: p.new_stream(0), clip.rgb)
        out[name] = {"ms_per_frame": round(statistics.median(run["ms"][1:]), 1),
                     "dit_evals": float(np.mean([r.dit_evals for r in run["results"][1:]]))}
    return out


def interleaved_speed(image, video, rgb: np.ndarray, repeat: int) -> dict:
    """ms per frame of today's 4-step streams and the new defaults, timed round-robin (A B A B ...) so that
    load from other processes hits them alike; mean over ``repeat`` frames (PPVD references included)."""
    from bench.common import measure_interleaved
    from ppd_ros.pipelines import PPDPipeline
    from ppd_ros.pipelines.video import PPVDPipeline

    def image_fn(name: str):
        pipe = PPDPipeline(image.dit, image.encoder, replace(image.cfg, **IMAGE_METHODS[name]))
        st, i = pipe.new_stream(0), [0]
        return lambda: (pipe.push(st, rgb[i[0] % len(rgb)], stamp=i[0]), i.__setitem__(0, i[0] + 1))

    def video_fn(name: str):
        mode, noise, kw = VIDEO_METHODS[name]
        pipe = PPVDPipeline(video.dit, video.encoder, replace(video.cfg, **kw), replace(video.video, noise=noise))
        st, i = pipe.new_stream(mode, seed=0), [0]
        return lambda: (pipe.push(st, rgb[i[0] % len(rgb)], stamp=i[0]), i.__setitem__(0, i[0] + 1))
    fns = {"ppd_fresh_s4": image_fn("ppd_fresh_s4"), DEFAULT_IMAGE: image_fn(DEFAULT_IMAGE),
           "ppvd_stream_fresh": video_fn("ppvd_stream_fresh"), DEFAULT_STREAM: video_fn(DEFAULT_STREAM)}
    t = measure_interleaved(fns, torch.device("cpu"), warmup=2, repeat=repeat)
    ms = {k: round(float(np.mean(v.ms)), 1) for k, v in t.items()}
    return {"ms_per_frame": ms, "frames": repeat,
            "speedup_image": round(ms["ppd_fresh_s4"] / ms[DEFAULT_IMAGE], 2),
            "speedup_stream": round(ms["ppvd_stream_fresh"] / ms[DEFAULT_STREAM], 2)}


def targets(rows: dict, speed: dict) -> dict:
    """The issue's targets, evaluated on this run (relative and metric; the defaults against the baselines)."""
    d, fresh, exact = rows.get(DEFAULT_IMAGE), rows.get("ppd_fresh_s4"), rows.get("ppvd_exact")
    if not (d and fresh and exact):
        return {}
    out = {"static_flicker_le_0.01": max(d["static_flicker"], d["real_static_flicker"]) <= 0.01,
           "static_flicker_le_0.1x_exact": d["static_flicker"] <= 0.1 * exact["static_flicker"]
           and d["real_static_flicker"] <= 0.1 * exact["real_static_flicker"],
           "metric_static_flicker_le_0.01": max(d["metric_static_flicker[default]"],
                                                d["metric_real_flicker[default]"]) <= 0.01,
           "metric_static_flicker_le_0.1x_exact": d["metric_static_flicker[default]"]
           <= 0.1 * exact["metric_static_flicker[default]"]
           and d["metric_real_flicker[default]"] <= 0.1 * exact["metric_real_flicker[default]"],
           "moving_absrel_within_2pct_of_fresh": d["absrel"] <= 1.02 * fresh["absrel"],
           "gt_flicker_below_fresh": d["gt_flicker"] < fresh["gt_flicker"],
           "cut_recovered_within_one_frame": d["cut_recovery"] <= 1.1,
           "scale_jitter_le_1pct": d["scale_jitter[default]"] <= 0.01}
    if speed:
        out["speedup_ge_1.8"] = speed["speedup_image"] >= 1.8
    return out


def table(rows: list[dict]) -> str:
    cols = [("method", "{:<24}"), ("absrel", "{:>8.4f}"), ("gt_flicker", "{:>8.4f}"), ("static_flicker", "{:>9.4f}"),
            ("real_static_flicker", "{:>9.4f}"), ("metric_static_flicker[default]", "{:>9.4f}"),
            ("metric_real_flicker[default]", "{:>9.4f}"), ("metric_real_flicker[per_frame]", "{:>9.4f}"),
            ("scale_jitter[default]", "{:>8.4f}"), ("scale_jitter[per_frame]", "{:>8.4f}"), ("cut_recovery", "{:>7.2f}"),
            ("dit_evals", "{:>6.2f}"), ("ms_per_frame", "{:>8.1f}"), ("latency_ms", "{:>8.1f}")]
    head = ["method", "AbsRel", "GTflick", "stat.fl", "real.fl", "m.stat", "m.real", "m.real0", "jit", "jit0",
            "cut", "evals", "ms", "lat"]
    widths = [24, 8, 8, 9, 9, 9, 9, 9, 8, 8, 7, 6, 8, 8]
    lines = ["".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(head, widths)))]
    for r in rows:
        lines.append("".join(fmt.format(r.get(c, float("nan"))) for c, fmt in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2, help="synthetic clips per kind")
    ap.add_argument("--length", type=int, default=16, help="frames per synthetic clip")
    ap.add_argument("--moving", type=int, default=2, help="held-out clips of bench/eval_video.py")
    ap.add_argument("--real-frames", type=int, default=24)
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--full-size-frames", type=int, default=2, help="0: skip the full-size column")
    ap.add_argument("--methods", default="", help="comma-separated subset")
    ap.add_argument("--speed-frames", type=int, default=16, help="interleaved timing frames per variant; 0: skip")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--metric-smoothing", default="", help="extra metric stages to compare, e.g. 0.8,0.95")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.length, args.moving, args.real_frames, args.full_size_frames = 1, 10, 1, 12, 0
        args.speed_frames = 4
    torch.set_num_threads(args.threads)
    from ppd_ros.data.synthetic import SynthConfig
    from ppd_ros.embedded import embedded_inference_config, load_embedded_image_pipeline, load_embedded_metric_stage
    from ppd_ros.embedded import load_embedded_video_pipeline
    from ppd_ros.pipelines import PPDPipeline
    from ppd_ros.pipelines.metric import MetricConfig, MetricStage
    from ppd_ros.pipelines.video import PPVDPipeline
    from ppd_ros.train.video import HELDOUT_SEED_BASE, sequence_pool
    t_start = time.perf_counter()
    clips = {f"{k}:{s}": make_clip(k, SEED_BASE + s, args.length) for k in ("static", "pan", "fast", "cut", "zoom")
             for s in range(args.seeds)}
    if args.moving:
        rgb, depth = sequence_pool(HELDOUT_SEED_BASE, args.moving, args.length, SynthConfig(height=96, width=128))
        from ppd_ros.data.clips import Clip
        clips.update({f"moving:{i}": Clip("moving", rgb[i], depth[i]) for i in range(args.moving)})
    real = None if args.no_real else real_video(args.real_frames, fetch=True)
    inputs = {**{k: c.rgb for k, c in clips.items()}, **({"real:vtest": real} if real is not None else {})}
    base = load_embedded_image_pipeline("default", embedded_inference_config(None, "default"))
    video = load_embedded_video_pipeline("default")
    metric = load_embedded_metric_stage("default")
    stages = {"per_frame": MetricStage(metric.moge, MetricConfig(smoothing=0.0, adapt_threshold=0.0, reseed_fit=False)),
              "default": MetricStage(metric.moge, MetricConfig())}
    for sm in filter(None, args.metric_smoothing.split(",")):
        stages[f"smooth{sm}"] = MetricStage(metric.moge, MetricConfig(smoothing=float(sm)))
    wanted = set(filter(None, args.methods.split(",")))
    rows = []
    for name, kw in IMAGE_METHODS.items():
        if wanted and name not in wanted:
            continue
        pipe = PPDPipeline(base.dit, base.encoder, replace(base.cfg, **kw))
        runs = {k: run_stream(pipe, lambda: pipe.new_stream(0), x) for k, x in inputs.items()}
        rows.append(evaluate(name, runs, clips, real, stages))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    for name, (mode, noise, kw) in VIDEO_METHODS.items():
        if wanted and name not in wanted:
            continue
        pipe = PPVDPipeline(video.dit, video.encoder, replace(video.cfg, **kw), replace(video.video, noise=noise))
        runs = {k: run_stream(pipe, lambda: pipe.new_stream(mode, seed=0), x) for k, x in inputs.items()}
        rows.append(evaluate(name, runs, clips, real, stages))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    speed = interleaved_speed(base, video, clips["fast:0"].rgb, args.speed_frames) if args.speed_frames else {}
    full = full_size_speed(args.full_size_frames, args.threads) if args.full_size_frames else {}
    print(f"\nembedded models, CPU ({torch.get_num_threads()} thread), synthetic clips {args.seeds} seeds x "
          f"{args.length} frames (128x96), {args.moving} eval_video clips, real: "
          f"{'vtest.avi ' + str(len(real)) + ' frames' if real is not None else 'none'}")
    print(table(rows))
    if speed:
        print(f"interleaved timing ({speed['frames']} frames each, A B A B): " + ", ".join(
            f"{k} {v} ms" for k, v in speed["ms_per_frame"].items()) + f"; default vs 4-step fresh: image "
            f"x{speed['speedup_image']}, PPVD stream x{speed['speedup_stream']}")
    by_name = {r["method"]: r for r in rows}
    goals = targets(by_name, speed)
    if goals:
        print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in goals.items()))
    if full:
        print("full-size PPD architecture (random weights), 128x96, ms per frame (static clip): "
              + ", ".join(f"{k} {v['ms_per_frame']} ms ({v['dit_evals']:g} evals)" for k, v in full.items()))
    emit({"bench": "stability", "seeds": args.seeds, "length": args.length, "moving_clips": args.moving,
          "real": "vtest.avi" if real is not None else None, "threads": torch.get_num_threads(),
          "methods": {r["method"]: {k: v for k, v in r.items() if k != "method"} for r in rows},
          "interleaved_speed": speed, "targets": goals, "defaults": [DEFAULT_IMAGE, DEFAULT_STREAM],
          "full_size_128x96": full, "wall_s": round(time.perf_counter() - t_start, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
