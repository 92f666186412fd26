"""Launch the ppd_ros depth node with the video model PPVD (streaming by default, or exact windows).

    ros2 launch ppd_ros ppvd.launch.py model:=ppvd video_mode:=stream image:=/camera/image_raw rviz:=true

(files from the cache: ``ppd-ros weights fetch ppvd``; or explicit paths
``dit_checkpoint:=/models/ppvd.pth semantics_checkpoint:=/models/pi3.safetensors``).

Same arguments as ppd.launch.py plus ``video_mode`` (stream | exact), which picks
config/ppvd_stream.yaml or config/ppvd_exact.yaml unless ``config`` is given.
"""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("ppd_launch_base", os.path.join(HERE, "ppd.launch.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)


def choose_config(context):
    """An empty ``config`` means: the preset of the chosen video mode."""
    a = context.launch_configurations
    mode = a.get("video_mode", "stream").strip().lower()
    if mode not in ("stream", "exact"):
        raise ValueError(f"video_mode must be 'stream' or 'exact', got {mode!r}")
    if not a.get("config"):
        a["config"] = os.path.join(base.CONFIG_DIR, f"ppvd_{mode}.yaml")


def generate_launch_description():
    return base.make_description("", extra_setup=choose_config, extra_args=[
        ("video_mode", "stream", "stream (causal, per frame) or exact (official windows)")])
