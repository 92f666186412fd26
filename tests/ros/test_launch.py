"""The launch files without launch / launch_ros (ros2_env.md section 6): parse them, run
generate_launch_description() against small stand-ins of the launch classes, check the Node actions,
parameters and remaps they describe, and start the node process they describe (what launch_ros
would exec) to see it come up in the ROS graph with the remapped topics. Also the YAML presets and
the RViz config."""
from __future__ import annotations

import ast
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import yaml

from .node_support import (FIXTURE_PARAMS, REPO, check_dds_confined, dds_env, fresh_domain, start_process,
                           stop_process, wait_for)

check_dds_confined()

LAUNCH = {name: REPO / "launch" / name for name in ("ppd.launch.py", "ppvd.launch.py")}
CONFIGS = ["ppd.yaml", "ppvd_exact.yaml", "ppvd_stream.yaml", "embedded.yaml"]


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchDescription(_Recorder):
    @property
    def entities(self):
        return list(self.args[0])

    def add_action(self, action):
        self.args[0].append(action)


class _Context:
    """What OpaqueFunction hands to its function: the launch arguments' values."""

    def __init__(self, values: dict[str, str]) -> None:
        self.launch_configurations = dict(values)


def _stub_modules(monkeypatch) -> None:
    mods = {name: types.ModuleType(name) for name in
            ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions")}
    mods["launch"].LaunchDescription = _LaunchDescription
    for cls in ("DeclareLaunchArgument", "ExecuteProcess", "OpaqueFunction"):
        setattr(mods["launch.actions"], cls, type(cls, (_Recorder,), {}))
    mods["launch.substitutions"].LaunchConfiguration = type("LaunchConfiguration", (_Recorder,), {})
    mods["launch_ros.actions"].Node = type("Node", (_Recorder,), {})
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


def load(monkeypatch, name: str):
    try:
        import launch_ros  # noqa: F401
        pytest.skip("real launch_ros present: use launch_testing there")
    except ImportError:
        _stub_modules(monkeypatch)
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH[name])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate_launch_description()


def expand(ld, **given: str) -> tuple[dict[str, str], list]:
    """Argument values (defaults + ``given``) and the actions the OpaqueFunction returns for them."""
    values = {e.args[0]: e.kwargs["default_value"] for e in ld.entities
              if type(e).__name__ == "DeclareLaunchArgument"}
    values.update(given)
    ctx = _Context(values)
    actions = []
    for e in ld.entities:
        if type(e).__name__ == "OpaqueFunction":
            actions += e.kwargs["function"](ctx)
    return ctx.launch_configurations, actions


@pytest.mark.parametrize("name", sorted(LAUNCH))
def test_launch_file_parses(name: str) -> None:
    tree = ast.parse(LAUNCH[name].read_text(), str(LAUNCH[name]))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_param_files_keyed_by_node_name_and_declared(cfg: str) -> None:
    from ppd_ros.ros.params import PARAMS
    data = yaml.safe_load((REPO / "config" / cfg).read_text())
    params = data["depth_node"]["ros__parameters"]
    names = {p.name for p in PARAMS}
    assert set(params) <= names, set(params) - names  # nothing the node would silently ignore
    for p in PARAMS:
        if p.name in params and p.choices:
            assert params[p.name] in p.choices, (p.name, params[p.name])


def test_ppd_launch_defaults(monkeypatch) -> None:
    ld = load(monkeypatch, "ppd.launch.py")
    values, actions = expand(ld)
    assert {"config", "namespace", "image", "camera_info", "model", "dit_checkpoint", "semantics_checkpoint",
            "metric_checkpoint", "rviz", "bag", "bag_path"} <= set(values)
    (node,) = actions  # rviz and bag off by default
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"], kw["namespace"]) == ("ppd_ros", "depth_node", "depth_node", "")
    assert kw["parameters"] == [values["config"]] and Path(values["config"]).name == "ppd.yaml"
    assert Path(values["config"]).is_file()
    assert dict(kw["remappings"]) == {"image": "image", "image/compressed": "image/compressed",
                                      "camera_info": "camera_info"}


def test_ppd_launch_arguments_reach_the_node(monkeypatch) -> None:
    ld = load(monkeypatch, "ppd.launch.py")
    _, actions = expand(ld, namespace="front", image="/camera/color/image_raw",
                        camera_info="/camera/color/camera_info", dit_checkpoint="/m/ppd.pth",
                        semantics_checkpoint="/m/da2.pth", rviz="true", bag="true", bag_path="/tmp/b")
    node, rviz, bag = actions
    kw = node.kwargs
    assert kw["namespace"] == "front"
    assert kw["parameters"][1] == {"dit_checkpoint": "/m/ppd.pth", "semantics_checkpoint": "/m/da2.pth",
                                   "model": "checkpoints"}
    assert dict(kw["remappings"])["image"] == "/camera/color/image_raw"
    assert dict(kw["remappings"])["image/compressed"] == "/camera/color/image_raw/compressed"
    assert rviz.kwargs["package"] == "rviz2" and rviz.kwargs["arguments"][1].endswith("config/ppd_ros.rviz")
    cmd = bag.kwargs["cmd"]
    assert cmd[:3] == ["ros2", "bag", "record"] and cmd[cmd.index("-o") + 1] == "/tmp/b"
    assert set(cmd[-4:]) == {"/front/depth", "/front/depth/camera_info", "/front/points", "/front/status"}


def test_model_argument_selects_official_weights_by_name(monkeypatch) -> None:
    from ppd_ros.hub import MODELS
    from ppd_ros.ros.params import NodeSettings
    ld = load(monkeypatch, "ppd.launch.py")
    for model in MODELS:
        _, actions = expand(ld, model=model, rviz="true")
        node, rviz = actions
        over = node.kwargs["parameters"][1]
        assert over == ({"model": model, "mode": "video_stream"} if model == "ppvd" else {"model": model})
        NodeSettings(model=model, mode=over.get("mode", "image"))  # a consistent pair for the node
        assert rviz.kwargs["arguments"][1].endswith("config/ppd_ros.rviz")
    # by name + an explicit path: the path replaces the cached file of its role
    _, (node,) = expand(ld, model="ppd", metric_checkpoint="/m/model.pt")
    assert node.kwargs["parameters"][1] == {"model": "ppd", "metric_checkpoint": "/m/model.pt"}


def test_ppvd_launch_model_argument_keeps_its_video_mode(monkeypatch) -> None:
    ld = load(monkeypatch, "ppvd.launch.py")
    _, (node,) = expand(ld, model="ppvd", video_mode="exact")
    assert node.kwargs["parameters"][1] == {"model": "ppvd"}  # the mode comes from ppvd_exact.yaml
    assert Path(node.kwargs["parameters"][0]).name == "ppvd_exact.yaml"


def test_param_files_load_official_weights_by_name() -> None:
    from ppd_ros.ros.params import NodeSettings
    for cfg, model in [("ppd.yaml", "ppd"), ("ppvd_stream.yaml", "ppvd"), ("ppvd_exact.yaml", "ppvd")]:
        p = yaml.safe_load((REPO / "config" / cfg).read_text())["depth_node"]["ros__parameters"]
        assert p["model"] == model and "dit_checkpoint" not in p and not p["dit_preset"] and not p["semantics_preset"]
        NodeSettings(model=p["model"], mode=p["mode"])


def test_ppvd_launch_picks_the_video_preset(monkeypatch) -> None:
    ld = load(monkeypatch, "ppvd.launch.py")
    for mode in ("stream", "exact"):
        _, (node,) = expand(ld, video_mode=mode)
        cfg = node.kwargs["parameters"][0]
        assert Path(cfg).name == f"ppvd_{mode}.yaml" and Path(cfg).is_file()
        params = yaml.safe_load(Path(cfg).read_text())["depth_node"]["ros__parameters"]
        assert params["mode"] == f"video_{mode}"
    with pytest.raises(ValueError, match="video_mode"):
        expand(ld, video_mode="fast")


def test_rviz_config_displays_and_qos() -> None:
    d = yaml.safe_load((REPO / "config" / "ppd_ros.rviz").read_text())
    displays = {x["Class"].split("/")[-1]: x for x in d["Visualization Manager"]["Displays"]}
    assert {"Image", "DepthCloud", "PointCloud2"} <= set(displays)
    assert displays["PointCloud2"]["Topic"]["Value"] == "/points"
    assert displays["DepthCloud"]["Topic"]["Value"] == "/depth"
    for x in displays.values():
        if "Topic" in x:  # matches the node's default output QoS
            assert x["Topic"]["Reliability Policy"] == "Reliable" and x["Topic"]["Durability Policy"] == "Volatile"


def node_command(node, overrides: dict) -> list[str]:
    """What launch_ros would exec for this Node action (installed executable when colcon built it)."""
    kw = node.kwargs
    exe = REPO / "install" / "ppd_ros" / "lib" / "ppd_ros" / "depth_node"
    cmd = [str(exe)] if os.access(exe, os.X_OK) else ["-m", "ppd_ros.ros.depth_node"]
    cmd += ["--ros-args", "-r", f"__node:={kw['name']}"]
    if kw["namespace"]:
        cmd += ["-r", f"__ns:=/{kw['namespace']}"]
    for p in kw["parameters"]:
        if isinstance(p, str):
            cmd += ["--params-file", p]
        else:
            cmd += [a for k, v in p.items() for a in ("-p", f"{k}:={v}")]
    cmd += [a for k, v in overrides.items() for a in ("-p", f"{k}:={v}")]
    return cmd + [a for src, dst in kw["remappings"] for a in ("-r", f"{src}:={dst}")]


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_launched_node_comes_up_with_remaps(monkeypatch) -> None:
    ld = load(monkeypatch, "ppd.launch.py")
    _, (node,) = expand(ld, namespace="front", image="/camera/color/image_raw",
                        camera_info="/camera/color/camera_info")
    cmd = node_command(node, {k: v for k, v in FIXTURE_PARAMS.items() if k != "model"} | {"model": "checkpoints"})
    domain = fresh_domain()
    env = dds_env(domain)
    proc = start_process(cmd, env, executable=cmd[0] != "-m")
    import rclpy
    from rclpy.node import Node
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    try:
        probe = Node("launch_probe", context=ctx)

        def subscribed() -> set[str]:
            try:
                return {t for t, _ in probe.get_subscriber_names_and_types_by_node("depth_node", "/front")}
            except Exception:  # noqa: BLE001 - node not discovered yet
                return set()
        want = {"/camera/color/image_raw", "/camera/color/camera_info"}
        wait_for(lambda: want <= subscribed() or proc.poll() is not None, 60)
        subs = subscribed()
        pubs = {t for t, _ in probe.get_publisher_names_and_types_by_node("depth_node", "/front")} \
            if want <= subs else set()
        probe.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
        out = stop_process(proc)
    assert want <= subs, (subs, out[-2000:])
    assert {"/front/depth", "/front/depth/camera_info", "/front/points", "/front/status"} <= pubs, pubs
