"""The node's ROS parameters: declared once with descriptors and ranges, read once into NodeSettings.

Every parameter is listed in ``PARAMS`` (name, default, description with unit, range/choices,
read-only flag). ``declare(node)`` declares them all; ``read(node)`` validates the values and
returns a frozen ``NodeSettings``; the node never calls ``get_parameter`` anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from ..errors import ConfigError
from ..hub import MODELS


@dataclass(frozen=True)
class Param:
    """One declared parameter: default (fixes the type), doc with unit, range or choices."""

    name: str
    default: Any
    doc: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False


PARAMS: tuple[Param, ...] = (
    # --- model (read-only: changing them needs a cleanup/configure cycle) ----------------------
    Param("model", "embedded", "'embedded' (default small models shipped with the package), "
          "'embedded:<name>', 'checkpoints' (dit_checkpoint + semantics_checkpoint), or official weights by "
          "name from the Hugging Face cache (ppd-ros weights fetch NAME): 'ppd' (PPD + DA2), 'ppd_moge2' (PPD "
          "with MoGe-2 semantics, one shared encoder pass), 'ppvd' (streaming PPVD + pi3 + MoGe-2 metric)",
          read_only=True),
    Param("weights_cache_dir", "", "cache folder of the official weights for model ppd / ppd_moge2 / ppvd "
          "('' = the Hugging Face cache: HF_HUB_CACHE, else HF_HOME/hub)", read_only=True),
    Param("mode", "image", "pipeline: image (PPD per frame), video_exact (PPVD windows), "
          "video_stream (PPVD streaming)", choices=("image", "video_exact", "video_stream"), read_only=True),
    Param("dit_checkpoint", "", "path of the DiT checkpoint (model=checkpoints)", read_only=True),
    Param("semantics_checkpoint", "", "path of the semantic encoder checkpoint (model=checkpoints)",
          read_only=True),
    Param("dit_preset", "", "architecture preset of the DiT checkpoint ('' = official: ppd_dit for "
          "mode image, ppvd_dit_video for the video modes)", read_only=True),
    Param("semantics_preset", "", "architecture preset of the semantic encoder ('' = official: da2_vitl "
          "for mode image, pi3 for the video modes)", read_only=True),
    Param("metric_checkpoint", "", "MoGe-2 checkpoint of the metric stage (official model.pt, or .safetensors "
          "with metric_preset); '' = the embedded metric model when one is shipped", read_only=True),
    Param("metric_preset", "", "MoGe-2 architecture preset for a .safetensors metric_checkpoint ('' = the "
          "model_config inside model.pt)", read_only=True),
    Param("metric_tokens", 0, "MoGe-2 token budget per frame (0 = its default, resolution level 9; fewer is "
          "faster and coarser)", 0, 100000, read_only=True),
    Param("metric_refresh_every", 1, "run MoGe-2 every n-th frame and hold the scale in between [frames]",
          1, 1000, read_only=True),
    Param("precision", "auto", "compute dtype: auto (bf16/fp16 on CUDA, fp32 on CPU), float32, bfloat16, "
          "float16", choices=("auto", "float32", "bfloat16", "float16"), read_only=True),
    Param("device", "auto", "torch device: auto, cpu, cuda, cuda:N", read_only=True),
    Param("cpu_threads", 0, "torch CPU threads of this process (0 = torch's default; 1 avoids thread "
          "oversubscription on busy CPUs)", 0, 256, read_only=True),
    Param("steps", 0, "Euler sampling steps (0 = the model's stream default: 1 for the embedded models, chosen "
          "by bench/bench_stability.py; the official 4 for checkpoints)", 0, 64, read_only=True),
    Param("working_area", 1024 * 768, "model working resolution as an area [pixels]", 256, 4096 * 4096,
          read_only=True),
    Param("seed", 0, "seed of the diffusion noise (per camera stream)", 0, 2**31 - 1, read_only=True),
    Param("speedups", True, "runtime.DEFAULT speed-ups (RoPE tables once per grid, one adaLN product per "
          "step, fused LayerNorm+modulation, low-dtype weights under autocast; outputs within fp32 rounding); "
          "false = the reference path (the official procedure)", read_only=True),
    # --- stable streams (docs/stable_streams.md) ---------------------------------------------------
    Param("noise", "fixed", "diffusion noise per camera stream: fixed (drawn once from the seed, reused for every "
          "frame: still scenes give still depth) or fresh (a new draw per frame, the official image code)",
          choices=("fixed", "fresh"), read_only=True),
    Param("warm_start", False, "start a frame that barely moved since the last cold frame at an intermediate "
          "timestep from that frame's result (fewer DiT evaluations; needs noise=fixed and steps > "
          "warm_start_step; off by default: it raised flicker on the real video in bench/bench_stability.py)",
          read_only=True),
    Param("warm_start_step", 1, "schedule index a warm frame starts at (it runs steps - warm_start_step "
          "evaluations)", 1, 63, read_only=True),
    Param("motion_threshold", 0.01, "mean grey change (0..1, quarter-size image) since the last cold frame above "
          "which a frame cold-starts", 0.0, 1.0, read_only=True),
    Param("max_gap", 2.0, "a stamp gap longer than this restarts the camera's stream (cold start, metric "
          "smoothing reset); 0 disables [s]", 0.0, 3600.0, read_only=True),
    Param("metric_smoothing", 0.95, "temporal smoothing of the metric scale (EMA weight of the held log-depth "
          "map; a change above 0.2 in log depth is taken at once; 0 = per-frame fit)", 0.0, 0.999,
          read_only=True),
    # --- inputs ---------------------------------------------------------------------------------
    Param("cameras", [""], "camera namespaces served by this process ('' = the node's namespace); each "
          "gets <ns>/image, <ns>/camera_info and its own outputs", read_only=True),
    Param("input_transport", "raw", "raw: sensor_msgs/Image on 'image'; compressed: CompressedImage on "
          "'image/compressed' (JPEG/PNG)", choices=("raw", "compressed"), read_only=True),
    Param("use_camera_info", True, "pair images with camera_info by stamp; without a camera_info publisher "
          "frames go on uncalibrated (predicted intrinsics)", read_only=True),
    Param("sync_slop", 0.02, "largest stamp difference of an image/camera_info pair [s]", 0.0, 1.0,
          read_only=True),
    Param("sync_queue_size", 10, "messages kept per input while waiting for a partner", 1, 100, read_only=True),
    Param("max_stream_lag", 1.0, "a frame is dropped as stale when its camera already sent a frame stamped more "
          "than this later; compares input stamps only (bags without /clock, cameras on their own clock are "
          "served); 0 disables [s]", 0.0, 3600.0, read_only=True),
    Param("max_frame_age", 0.0, "opt-in for cameras stamped on the node clock: frames whose stamp is older than "
          "this on the node clock when inference starts are dropped; 0 (default) disables [s]", 0.0, 3600.0,
          read_only=True),
    # --- outputs --------------------------------------------------------------------------------
    Param("metric", True, "scale depth to metres with the metric stage (else publish depth/relative only)",
          read_only=True),
    Param("output_resolution", "input", "size of the published depth: input (the camera image's) or model "
          "(the working resolution; camera_info scaled to match)", choices=("input", "model"), read_only=True),
    Param("depth_encoding", "32FC1", "32FC1: metres, NaN invalid, +Inf beyond range; 16UC1: millimetres, "
          "0 invalid", choices=("32FC1", "16UC1"), read_only=True),
    Param("max_depth", 80.0, "depth beyond this is published as +Inf (32FC1) [m]", 0.1, 10000.0, read_only=True),
    Param("publish_points", True, "publish the organized PointCloud2 on 'points'", read_only=True),
    Param("points_format", "xyzrgb", "point fields", choices=("xyz", "xyzrgb"), read_only=True),
    Param("points_stride", 1, "keep every n-th pixel in each direction in 'points'", 1, 16, read_only=True),
    Param("lazy", True, "skip inference while nobody subscribes to an image/cloud output", read_only=True),
    Param("output_reliability", "reliable", "QoS reliability of the outputs (reliable serves RViz and "
          "rosbag2 defaults as well as best-effort subscribers)", choices=("reliable", "best_effort"),
          read_only=True),
    Param("output_depth", 2, "QoS keep-last history depth of the outputs", 1, 100, read_only=True),
    Param("diagnostics_period", 1.0, "period of the /diagnostics report [s]", 0.1, 60.0, read_only=True),
    Param("log_throttle", 5.0, "each class of bad input is logged at most once per this period [s]",
          0.0, 3600.0, read_only=True),
)

Precision = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class NodeSettings:
    """Every parameter's value, validated; built once per configure."""

    model: str = "embedded"
    weights_cache_dir: str = ""
    mode: Literal["image", "video_exact", "video_stream"] = "image"
    dit_checkpoint: str = ""
    semantics_checkpoint: str = ""
    dit_preset: str = ""
    semantics_preset: str = ""
    metric_checkpoint: str = ""
    metric_preset: str = ""
    metric_tokens: int = 0
    metric_refresh_every: int = 1
    precision: Precision = "auto"
    device: str = "auto"
    cpu_threads: int = 0
    steps: int = 0
    working_area: int = 1024 * 768
    seed: int = 0
    speedups: bool = True
    noise: Literal["fixed", "fresh"] = "fixed"
    warm_start: bool = False
    warm_start_step: int = 1
    motion_threshold: float = 0.01
    max_gap: float = 2.0
    metric_smoothing: float = 0.95
    cameras: tuple[str, ...] = ("",)
    input_transport: Literal["raw", "compressed"] = "raw"
    use_camera_info: bool = True
    sync_slop: float = 0.02
    sync_queue_size: int = 10
    max_stream_lag: float = 1.0
    max_frame_age: float = 0.0
    metric: bool = True
    output_resolution: Literal["input", "model"] = "input"
    depth_encoding: Literal["32FC1", "16UC1"] = "32FC1"
    max_depth: float = 80.0
    publish_points: bool = True
    points_format: Literal["xyz", "xyzrgb"] = "xyzrgb"
    points_stride: int = 1
    lazy: bool = True
    output_reliability: Literal["reliable", "best_effort"] = "reliable"
    output_depth: int = 2
    diagnostics_period: float = 1.0
    log_throttle: float = 5.0

    def __post_init__(self) -> None:
        named = _check_model(self.model, self.mode)
        if not (named or self.model == "checkpoints" or self.model == "embedded" or self.model.startswith("embedded:")):
            raise ConfigError(f"model must be 'embedded', 'embedded:<name>', 'checkpoints' or one of "
                              f"{', '.join(MODELS)}, got {self.model!r}")
        if self.model == "checkpoints" and not (self.dit_checkpoint and self.semantics_checkpoint):
            raise ConfigError("model 'checkpoints' needs both dit_checkpoint and semantics_checkpoint")
        names = [normalize_namespace(c) for c in self.cameras]
        if not names:
            raise ConfigError("cameras must list at least one namespace ('' = the node's own)")
        if len(set(names)) != len(names):
            raise ConfigError(f"cameras lists a namespace twice: {list(self.cameras)}")
        object.__setattr__(self, "cameras", tuple(names))


def _check_model(model: str, mode: str) -> bool:
    """True for a by-name model (hub.MODELS); ConfigError when it does not fit ``mode``."""
    if model not in MODELS:
        return False
    video = MODELS[model].mode != "image"
    if video != (mode != "image"):
        want = "mode:=video_stream (or video_exact)" if video else "mode:=image"
        raise ConfigError(f"model {model!r} is {'a video' if video else 'an image'} model: set {want}")
    return True


def normalize_namespace(ns: str) -> str:
    """'cam0', '/cam0/', 'cam0/' -> 'cam0' (relative: the node's namespace applies); '' stays ''."""
    ns = ns.strip()
    if ns.startswith("/"):
        return "/" + ns.strip("/") if ns.strip("/") else ""
    return ns.strip("/")


def topic(ns: str, name: str) -> str:
    """Topic ``name`` inside camera namespace ``ns`` ('' -> relative ``name``)."""
    return f"{ns}/{name}" if ns else name


def _descriptor(p: Param) -> ParameterDescriptor:
    doc = p.doc + (f" (one of: {', '.join(p.choices)})" if p.choices else "")
    d = ParameterDescriptor(description=doc, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.lo is not None and isinstance(p.default, bool) is False:
        if isinstance(p.default, int):
            d.integer_range = [IntegerRange(from_value=int(p.lo), to_value=int(p.hi), step=1)]
        elif isinstance(p.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(p.lo), to_value=float(p.hi), step=0.0)]
    return d


def declare(node: Any) -> None:
    """Declare every parameter on ``node`` (values from YAML / -p overrides apply here)."""
    for p in PARAMS:
        if not node.has_parameter(p.name):
            node.declare_parameter(p.name, p.default, _descriptor(p))


def read(node: Any) -> NodeSettings:
    """Read the declared parameters once; ConfigError names the first bad value."""
    values: dict[str, Any] = {}
    for p in PARAMS:
        v = node.get_parameter(p.name).value
        if p.choices and v not in p.choices:
            raise ConfigError(f"parameter {p.name}={v!r}: expected one of {', '.join(p.choices)}")
        values[p.name] = tuple(v) if isinstance(v, (list, tuple)) else v
    names = {f.name for f in fields(NodeSettings)}
    return NodeSettings(**{k: v for k, v in values.items() if k in names})
