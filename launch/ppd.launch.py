"""Launch the ppd_ros depth node (image model PPD) with a parameter YAML, optional RViz and bag.

    ros2 launch ppd_ros ppd.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info dit_checkpoint:=/models/ppd.pth \
        semantics_checkpoint:=/models/depth_anything_v2_vitl.pth metric_checkpoint:=/models/moge2.pt rviz:=true

Without launch_ros (this repository's CI), ``ppd-ros run`` starts the same node process with the
same YAML (see docs/node.md). ``launch/ppvd.launch.py`` reuses ``make_description``.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch_ros.actions import Node

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(os.path.dirname(HERE), "config")  # share/ppd_ros/config once installed
OUTPUTS = ("depth", "depth/camera_info", "points", "status")


def arguments(default_config):
    """(name, default, description) of every launch argument."""
    return [
        ("config", default_config, "parameter YAML (keyed by the node name depth_node)"),
        ("namespace", "", "namespace of the node and its topics"),
        ("image", "image", "camera image topic (remap target of 'image'; '<image>/compressed' for JPEG)"),
        ("camera_info", "camera_info", "camera_info topic (remap target of 'camera_info')"),
        ("dit_checkpoint", "", "DiT checkpoint path (overrides the YAML; sets model:=checkpoints)"),
        ("semantics_checkpoint", "", "semantic encoder checkpoint path (overrides the YAML)"),
        ("metric_checkpoint", "", "MoGe-2 checkpoint path for metric scale (overrides the YAML)"),
        ("rviz", "false", "also start RViz with config/ppd_ros.rviz"),
        ("bag", "false", "also record depth, depth/camera_info, points, status with ros2 bag (MCAP)"),
        ("bag_path", "ppd_bag", "output directory of the bag"),
    ]


def _true(value):
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def launch_setup(context, *args, **kwargs):
    """The actions, once the arguments are known (checkpoint overrides only when given)."""
    a = context.launch_configurations
    overrides = {k: a[k] for k in ("dit_checkpoint", "semantics_checkpoint", "metric_checkpoint") if a.get(k)}
    if a.get("dit_checkpoint") or a.get("semantics_checkpoint"):
        overrides["model"] = "checkpoints"
    ns = a.get("namespace", "").strip("/")
    actions = [Node(
        package="ppd_ros", executable="depth_node", name="depth_node", namespace=ns,
        parameters=[a["config"], overrides] if overrides else [a["config"]],
        remappings=[("image", a["image"]), ("image/compressed", a["image"] + "/compressed"),
                    ("camera_info", a["camera_info"])],
        output="screen")]
    if _true(a.get("rviz", "false")):
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", namespace=ns,
                            arguments=["-d", os.path.join(CONFIG_DIR, "ppd_ros.rviz")], output="screen"))
    if _true(a.get("bag", "false")):
        topics = ["/" + "/".join(p for p in (ns, t) if p) for t in OUTPUTS]
        actions.append(ExecuteProcess(cmd=["ros2", "bag", "record", "-s", "mcap", "-o", a["bag_path"], *topics],
                                      output="screen"))
    return actions


def make_description(default_config, extra_setup=None, extra_args=()):
    """LaunchDescription with the shared arguments (+ ``extra_args``); ``extra_setup(context)`` may
    adjust the argument values before the actions are built."""
    def setup(context, *args, **kwargs):
        if extra_setup is not None:
            extra_setup(context)
        return launch_setup(context)
    declared = [DeclareLaunchArgument(n, default_value=d, description=doc)
                for n, d, doc in [*arguments(default_config), *extra_args]]
    return LaunchDescription(declared + [OpaqueFunction(function=setup)])


def generate_launch_description():
    return make_description(os.path.join(CONFIG_DIR, "ppd.yaml"))
