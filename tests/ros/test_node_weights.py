"""The node launched by name (model:=ppd) from a Hugging Face cache filled by ``ppd-ros weights fetch``,
cross-process and without network (HF_HUB_OFFLINE=1, HF_ENDPOINT at a closed loopback port); and the
one-line configure failure that names the fetch command when files are missing."""
from __future__ import annotations

import numpy as np
import pytest

from ..hub_files import FIXTURE_PRESETS, hub_env, serve, weights_cli
from ..hub_server import LocalHub
from .node_support import FIXTURE_PARAMS, dds_env, fresh_domain, ros_args, start_process

from .test_node_cross_process import run_camera  # noqa: E402 - after its DDS confinement

from ppd_ros.ros.conversions import image_msg_to_depth  # noqa: E402
from ppd_ros.ros.messages import status_to_dict  # noqa: E402

NO_NETWORK = "http://127.0.0.1:9"  # the discard port: nothing listens, nothing leaves the machine
# model:=ppd with no path parameter; the presets select the fixture-size architectures of the files
BY_NAME = {**{k: v for k, v in FIXTURE_PARAMS.items() if k not in ("model", "dit_checkpoint", "semantics_checkpoint")},
           "model": "ppd", "dit_preset": FIXTURE_PRESETS["ppd_dit"], "semantics_preset": FIXTURE_PRESETS["da2_vitl"],
           "metric_preset": FIXTURE_PRESETS["moge2_vitl_normal"], "metric_tokens": 64, "metric_refresh_every": 1000,
           "max_depth": 50.0}


def _offline(monkeypatch, home) -> None:
    """The node process (dds_env copies os.environ) sees only the local cache."""
    for k, v in {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": NO_NETWORK}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def test_model_ppd_starts_from_the_prefilled_cache_without_network(tmp_path, monkeypatch) -> None:
    home = tmp_path / "hf"
    with LocalHub() as hub:
        serve(hub)
        r = weights_cli(["fetch", "ppd"], hub_env(home, hub.endpoint))
        assert r.returncode == 0, r.stderr
    _offline(monkeypatch, home)
    col, sent, counters, log = run_camera(BY_NAME, ["--reliability", "reliable"])
    assert counters["frames_in"] == sent["sent"] and counters["frames_out"] >= 1, counters
    assert len(col.got["depth"]) == counters["frames_out"]
    d = image_msg_to_depth(col.got["depth"][-1])
    assert d.dtype == np.float32 and np.isfinite(d).any() and (d[np.isfinite(d)] > 0).all()
    st = status_to_dict(col.got["status"][-1])
    assert st["model"] == "ppd" and st["metric"] is True and st["mode"] == "image"
    assert "configure failed" not in log and "Traceback" not in log


@pytest.mark.parametrize("model, mode, offline, command", [
    ("ppd", "image", False, "ppd-ros weights fetch ppd_dit da2_vitl moge2_vitl_normal"),
    ("ppvd", "video_stream", True, "ppd-ros weights fetch pi3 moge2_vitl_normal && "
                                   "ppd-ros weights fetch ppvd_dit_video --from /path/to/ppvd.pth"),
])
def test_missing_files_fail_configure_with_the_fetch_command(tmp_path, model, mode, offline, command) -> None:
    env = dds_env(fresh_domain())
    env.update(HF_HOME=str(tmp_path), HF_ENDPOINT=NO_NETWORK)
    env.pop("HF_HUB_CACHE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.pop("HF_HUB_OFFLINE", None)
    params = {**BY_NAME, "model": model, "mode": mode}
    proc = start_process(["-m", "ppd_ros.ros.depth_node", "--ros-args", *ros_args(params)], env)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, out
    lines = [ln for ln in out.splitlines() if "configure failed" in ln]
    assert len(lines) == 1 and f"weights not in the cache {tmp_path / 'hub'}" in lines[0], out
    assert lines[0].rstrip().endswith(command) or f"run: {command} (" in lines[0], lines[0]
    assert "Traceback" not in out


# --- in process: the by-name wiring of ppd_moge2 and ppvd (reduced architectures registered here) -----
def _cache_from_local_hub(cache, files: dict[str, bytes]) -> None:
    """Put ``files`` (registry name -> bytes) into ``cache`` with ``ppd-ros weights fetch`` from a LocalHub.

    The library runs in a child process whose HF_ENDPOINT is the local hub: in this process its
    endpoint constant is the public Hub, which even its own side requests must never reach.
    """
    from ppd_ros.hub import add_local, entry
    with LocalHub() as hub:
        on_hub = [n for n in files if entry(n).on_hub]
        for name in on_hub:
            hub.add(entry(name).repo_id, entry(name).filename, files[name])
        r = weights_cli(["fetch", *on_hub, "--cache-dir", str(cache)], hub_env(cache.parent / "home", hub.endpoint))
        assert r.returncode == 0, r.stderr
    for name in files:
        if not entry(name).on_hub:
            src = cache.parent / entry(name).filename
            src.write_bytes(files[name])
            add_local(name, src, cache)


def _register_once(name: str, factory) -> None:
    from ppd_ros.config import PRESETS, register
    if name not in PRESETS:
        register(name, factory)


def _state_bytes(module, prefix: str) -> bytes:
    import io

    import torch
    g = torch.Generator().manual_seed(0)
    buf = io.BytesIO()
    torch.save({prefix + k: torch.randn(v.shape, generator=g) * 0.05 for k, v in module.state_dict().items()}, buf)
    return buf.getvalue()


def test_ppd_moge2_by_name_shares_one_moge2_between_semantics_and_metric(tmp_path) -> None:
    from ppd_ros.config import DiTConfig, preset
    from ppd_ros.models import DiT
    from ppd_ros.ros.factory import build_models
    from ppd_ros.ros.params import NodeSettings

    from ..hub_files import official_bytes
    # a reduced ppd_moge.pth: the DiT's semantics width is the tiny MoGe-2's feature width (32)
    _register_once("test_ppd_moge_dit_tiny", lambda: DiTConfig(hidden_size=32, depth=2, num_heads=2, semantics_dim=32))
    cache = tmp_path / "hub"
    _cache_from_local_hub(cache, {"ppd_moge_dit": _state_bytes(DiT(preset("test_ppd_moge_dit_tiny")), "dit."),
                                  "moge2_vitl_normal": official_bytes()["moge2_vitl_normal"]})
    s = NodeSettings(model="ppd_moge2", weights_cache_dir=str(cache), dit_preset="test_ppd_moge_dit_tiny",
                     semantics_preset=FIXTURE_PRESETS["moge2_vitl_normal"], device="cpu", precision="float32",
                     working_area=64 * 48, steps=1)
    models = build_models(s)
    assert models.name == "ppd_moge2" and models.metric is not None
    assert models.metric.moge is models.pipeline.encoder  # one MoGe-2 pass for both
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    (res,) = models.pipeline.push(models.pipeline.new_stream(0), rgb)
    out = models.metric(models.metric.new_state(), res, rgb)
    assert np.isfinite(out.depth).any() and (out.depth[np.isfinite(out.depth)] > 0).all()


def test_ppvd_by_name_builds_the_streaming_pipeline_with_a_metric_stage(tmp_path) -> None:
    from ppd_ros.config import Pi3Config, preset, reduced_dit_video
    from ppd_ros.models.dit_video import DiT_Video
    from ppd_ros.ros.factory import VideoStream, build_models
    from ppd_ros.ros.params import NodeSettings

    from ..hub_files import official_bytes
    _register_once("test_ppvd_dit_video_tiny", lambda: reduced_dit_video(16, 4, 2, 32))
    _register_once("test_pi3_tiny", lambda: Pi3Config(dim=16, num_heads=2, enc_depth=1, dec_depth=2, img_size=28))
    from ppd_ros.models.pi3 import Pi3Semantic
    from safetensors.torch import save
    import torch
    g = torch.Generator().manual_seed(1)
    pi3 = {k: torch.randn(v.shape, generator=g) for k, v in Pi3Semantic(preset("test_pi3_tiny")).state_dict().items()}
    cache = tmp_path / "hub"
    _cache_from_local_hub(cache, {"ppvd_dit_video": _state_bytes(DiT_Video(preset("test_ppvd_dit_video_tiny")),
                                                                 "dit_video."),
                                  "pi3": save(pi3), "moge2_vitl_normal": official_bytes()["moge2_vitl_normal"]})
    s = NodeSettings(model="ppvd", mode="video_stream", weights_cache_dir=str(cache),
                     dit_preset="test_ppvd_dit_video_tiny", semantics_preset="test_pi3_tiny",
                     metric_preset=FIXTURE_PRESETS["moge2_vitl_normal"], device="cpu", precision="float32")
    models = build_models(s)
    assert models.name == "ppvd" and isinstance(models.pipeline, VideoStream) and models.pipeline.mode == "stream"
    assert models.metric is not None and models.pipeline.pipe.dit.cfg == preset("test_ppvd_dit_video_tiny")
    # an explicit path replaces the cached file of its role (here: a file that does not exist)
    with pytest.raises(Exception, match="checkpoint not found: /nonexistent/ppvd.pth"):
        build_models(NodeSettings(**{**s.__dict__, "dit_checkpoint": "/nonexistent/ppvd.pth"}))
