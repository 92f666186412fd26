"""The depth node: a LifecycleNode adapter, camera images in, metric depth + PointCloud2 out.

Shape (architecture rule 8): declare parameters -> validate (configure) -> message to array
(``inputs``) -> pipeline (``worker``) -> result to messages (``outputs``) -> publish.

* configure: read the parameters into ``NodeSettings``, load and verify the models (FAILURE with one
  log line on a bad or missing file), create the publishers of every camera.
* activate: start the inference thread, subscribe (sensor-data QoS).
* deactivate: unsubscribe, stop the thread (open windows are flushed and published), empty the
  CUDA cache of the dropped stream states.
* cleanup: destroy publishers, release the model and cached GPU memory.

``main()`` runs it as a plain node: with ``autostart`` (default true) it configures and activates
itself; with ``autostart:=false`` it waits for lifecycle service calls.
"""
from __future__ import annotations

import sys
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..errors import PPDError
from . import params
from .diagnostics import Diagnostics
from .factory import Models, build_models, release_device_memory
from .inputs import CameraInput
from .outputs import CameraOutputs
from .stream_stats import ThrottledLog
from .worker import InferenceWorker, Output

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class DepthNode(LifecycleNode):
    """Serves one or more camera namespaces with one model in memory (see the module docstring)."""

    def __init__(self, node_name: str = "depth_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        params.declare(self)
        self.declare_parameter("autostart", True, ParameterDescriptor(
            description="configure and activate at start-up (false: wait for lifecycle transitions)",
            read_only=True))
        self.settings: params.NodeSettings | None = None
        self.models: Models | None = None
        self.worker: InferenceWorker | None = None
        self.outputs: list[CameraOutputs] = []
        self.inputs: list[CameraInput] = []
        self.diagnostics: Diagnostics | None = None
        self.log = ThrottledLog(self._emit_log, 5.0)

    def _emit_log(self, level: str, text: str) -> None:
        # two call sites on purpose: rclpy refuses a severity change between calls from one line
        if level == "error":
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)

    # --- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            s = params.read(self)
            self.models = build_models(s)
        except (PPDError, ImportError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return FAILURE
        self.settings = s
        self.log = ThrottledLog(self._emit_log, s.log_throttle)
        cams = list(s.cameras)
        self.worker = InferenceWorker(self.models, cams, self._publish, self._wanted,
                                      lambda: self.get_clock().now().nanoseconds, s.max_frame_age, self.log, s.seed,
                                      max_lag_s=s.max_stream_lag, max_gap_s=s.max_gap)
        self.outputs = [CameraOutputs(self, ns, s, self.models.name, self.worker.streams[i].stats.snapshot)
                        for i, ns in enumerate(cams)]
        self.diagnostics = Diagnostics(self, s.diagnostics_period, cams, self._snapshot, self._model_info,
                                       self.worker.streams[0].stamps.rule())
        if self.models.metric is None:
            self.get_logger().warning(f"{self.models.metric_note}: publishing depth/relative only")
        self.get_logger().info(f"configured: model {self.models.name}, mode {s.mode}, cameras {cams}")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # publishers first: no result may meet an inactive publisher
        self.worker.start()
        self.inputs = [CameraInput(self, i, ns, self.settings, self.worker, self.log)
                       for i, ns in enumerate(self.settings.cameras)]
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        release_device_memory()  # stream states are dropped: return their cached GPU blocks
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        return SUCCESS

    def _stop_inputs(self) -> None:
        for cam in self.inputs:
            cam.destroy()
        self.inputs = []
        if self.worker is not None:
            self.worker.stop()

    def _release(self) -> None:
        if self.diagnostics is not None:
            self.diagnostics.close()
        for out in self.outputs:
            out.destroy()
        self.outputs, self.diagnostics, self.worker = [], None, None
        if self.models is not None:
            self.models.release()
        self.models = None

    # --- worker hooks (called from the inference thread) --------------------------------------
    def _publish(self, out: Output) -> None:
        self.outputs[out.frame.camera].publish(out)

    def _wanted(self, camera: int) -> bool:
        return self.outputs[camera].wanted()

    def _snapshot(self, camera: int):
        return self.worker.streams[camera].stats.snapshot()

    def _model_info(self) -> dict[str, str]:
        s = self.settings
        return {"model": self.models.name if self.models else "", "mode": s.mode, "precision": s.precision,
                "device": s.device, "metric": "off" if self.models is None or self.models.metric is None else "on"}


def main(args: list[str] | None = None) -> int:
    """Console script ``depth_node``: run the node until SIGINT/SIGTERM."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = DepthNode()
    executor = SingleThreadedExecutor()  # callbacks only convert and hand off; inference has its thread
    executor.add_node(node)
    rc = 0
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != SUCCESS or node.trigger_activate() != SUCCESS:
                return 1  # the reason is already logged (one line)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            if rclpy.ok() and node._state_machine.current_state[1] in ("unconfigured", "inactive", "active"):
                node.trigger_shutdown()
            else:  # the context is gone (SIGINT/SIGTERM): stop the worker and free the model directly
                node.on_shutdown(node._state_machine.current_state)
        except Exception:  # noqa: BLE001 - best effort at exit; the process ends anyway
            pass
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
