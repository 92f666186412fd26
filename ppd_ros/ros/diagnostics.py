"""/diagnostics for the depth node: per-camera input/output rates, stamp age, drops, GPU memory.

Uses ``diagnostic_updater`` when it is importable (a real ROS install); otherwise publishes its own
``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` from a timer with the same content.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .stream_stats import StatsSnapshot

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def gpu_memory() -> dict[str, str]:
    """Allocated / reserved / peak CUDA memory in MiB ({} on CPU)."""
    try:
        import torch
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return {}
        mib = 1 << 20
        return {"gpu_allocated_MiB": f"{torch.cuda.memory_allocated() / mib:.1f}",
                "gpu_reserved_MiB": f"{torch.cuda.memory_reserved() / mib:.1f}",
                "gpu_peak_MiB": f"{torch.cuda.max_memory_allocated() / mib:.1f}"}
    except Exception:  # pragma: no cover - broken CUDA runtime must not break diagnostics
        return {}


def stream_start_values(snap: StatsSnapshot) -> dict[str, str]:
    """Warm/cold frame counts, restarts by reason, DiT evaluations per published frame, the last start."""
    st = dict(getattr(snap, "starts", {}) or {})
    frames = st.get("warm", 0) + st.get("cold", 0)
    out = {"frames_warm": str(st.get("warm", 0)), "frames_cold": str(st.get("cold", 0)),
           "last_start": getattr(snap, "last_start", "") or "none"}
    if frames:
        out["dit_evals_per_frame"] = f"{st.get('dit_evals', 0) / frames:.2f}"
    out.update({k: str(v) for k, v in sorted(st.items()) if k.startswith("restart_")})
    return out


def camera_status(snap: StatsSnapshot, stale_rule: str = "") -> tuple[int, str, dict[str, str]]:
    """(level, message, values) of one camera from its counters; ``stale_rule`` says when frames are
    dropped as stale (``StampWatch.rule()``). ``stamp_age_s`` is node clock - stamp of the last output:
    years for a bag replayed without /clock, which is no fault (the outputs keep the input stamps)."""
    values = {"frames_in": str(snap.received), "frames_out": str(snap.published),
              "frames_in_flight": str(snap.in_flight), "input_rate_hz": f"{snap.input_rate_hz:.2f}",
              "output_rate_hz": f"{snap.output_rate_hz:.2f}",
              "stamp_age_s": "nan" if math.isnan(snap.last_stamp_age_s) else f"{snap.last_stamp_age_s:.3f}"}
    if stale_rule:
        values["stale_rule"] = stale_rule
    values.update({f"dropped_{k}": str(v) for k, v in sorted(snap.dropped.items())})
    values.update({f"warning_{k}": str(v) for k, v in sorted(snap.warnings.items())})
    values.update(stream_start_values(snap))
    if snap.received == 0:
        return WARN, "no input yet", values
    bad = {k: v for k, v in snap.dropped.items() if k not in ("superseded", "no_subscribers")}
    if snap.published == 0 and bad:
        return ERROR, "no output; dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())), values
    if bad or snap.warnings:
        parts = [f"{k}={v}" for k, v in sorted({**bad, **snap.warnings}.items())]
        return WARN, "running; " + ", ".join(parts), values
    return OK, "running", values


class Diagnostics:
    """Periodic diagnostics of all cameras served by a node; ``close()`` stops it."""

    def __init__(self, node: Any, period_s: float, cameras: list[str],
                 snapshot: Callable[[int], StatsSnapshot], model_info: Callable[[], dict[str, str]],
                 stale_rule: str = "") -> None:
        self._node, self._cameras, self._snapshot = node, cameras, snapshot
        self._model_info, self._stale_rule = model_info, stale_rule
        self._prefix = node.get_fully_qualified_name().lstrip("/")
        self._updater = None
        try:
            import diagnostic_updater  # real ROS install
        except ImportError:
            diagnostic_updater = None
        if diagnostic_updater is not None:
            self._updater = diagnostic_updater.Updater(node, period_s)
            self._updater.setHardwareID(self._prefix)
            for i, cam in enumerate(cameras):
                self._updater.add(self._name(cam), lambda stat, i=i: self._fill(stat, *self._camera(i)))
            self._updater.add(f"{self._prefix}: model", lambda stat: self._fill(stat, *self._model()))
            self._pub = self._timer = None
        else:
            self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self._timer = node.create_timer(period_s, self.publish)

    def _name(self, cam: str) -> str:
        return f"{self._prefix}: camera '{cam or '/'}'"

    def _camera(self, i: int) -> tuple[int, str, dict[str, str]]:
        return camera_status(self._snapshot(i), self._stale_rule)

    def _model(self) -> tuple[int, str, dict[str, str]]:
        values = {**self._model_info(), **gpu_memory()}
        return OK, "loaded", values

    @staticmethod
    def _fill(stat: Any, level: int, message: str, values: dict[str, str]) -> Any:
        stat.summary(level, message)
        for k, v in values.items():
            stat.add(k, v)
        return stat

    def statuses(self) -> list[DiagnosticStatus]:
        out = []
        parts = [(self._name(c), *self._camera(i)) for i, c in enumerate(self._cameras)]
        parts.append((f"{self._prefix}: model", *self._model()))
        for name, level, message, values in parts:
            out.append(DiagnosticStatus(level=level, name=name, message=message, hardware_id=self._prefix,
                                        values=[KeyValue(key=k, value=v) for k, v in values.items()]))
        return out

    def publish(self) -> None:
        msg = DiagnosticArray(status=self.statuses())
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)

    def close(self) -> None:
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._node.destroy_publisher(self._pub)
            self._timer = self._pub = None
        self._updater = None
