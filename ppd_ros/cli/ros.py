"""``ppd-ros run | record | replay``: the processes launch/ppd.launch.py describes, without launch_ros.

* ``ppd-ros run --params-file config/ppd.yaml [--namespace NS] [--remap image:=/cam/image_raw]
  [--camera IMG... [--camera-rate HZ]] [--record DIR] [--duration S] [--ros-args ...]`` starts the
  depth node exactly as launch_ros would exec it (``depth_node --ros-args -r __node:=depth_node
  -r __ns:=NS --params-file FILE -r from:=to``), optionally a camera publisher streaming image files
  and a bag recorder; Ctrl-C (or ``--duration``) stops them all.
* ``ppd-ros record --out DIR [--namespace NS] [--storage mcap|sqlite3]`` records depth,
  depth/camera_info, points and status into a rosbag2 bag (readable by ``ros2 bag`` and ``rosbags``).
* ``ppd-ros replay BAG [--namespace NS] [--rate 1.0] [--restamp] [--loop]`` publishes a bag's
  image / image/compressed / camera_info into the node.

rclpy is imported only when a subcommand runs, so ``ppd-ros`` works on machines without ROS.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="start the depth node (+ camera, + recorder) like the launch file")
    run.add_argument("--params-file", default=None, help="ROS parameter YAML (e.g. config/ppd.yaml)")
    run.add_argument("--namespace", default="", help="namespace of the node and its topics")
    run.add_argument("--name", default="depth_node", help="node name (keys the params file)")
    run.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="topic remap, repeatable")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                     help="parameter override, repeatable")
    run.add_argument("--camera", nargs="+", default=[], metavar="IMAGE",
                     help="also start a camera publisher streaming these image files")
    run.add_argument("--camera-rate", type=float, default=5.0, help="camera frames per second")
    run.add_argument("--camera-width", type=int, default=0, help="resize camera frames to this width")
    run.add_argument("--camera-count", type=int, default=0, help="frames to send (0 = until stopped)")
    run.add_argument("--record", default=None, metavar="DIR", help="also record the outputs to this bag")
    run.add_argument("--duration", type=float, default=0.0, help="stop everything after S seconds (0 = never)")
    run.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[],
                     help="passed to the node after its own --ros-args")
    run.set_defaults(func=cmd_run)

    rec = sub.add_parser("record", help="record depth, depth/camera_info, points, status to a rosbag2 bag")
    rec.add_argument("--out", required=True, help="new bag directory")
    rec.add_argument("--namespace", default="", help="namespace of the node's topics")
    rec.add_argument("--topics", nargs="+", default=None, help="relative topics (default: the four outputs)")
    rec.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    rec.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable",
                     help="subscription reliability (reliable matches the node's default outputs)")
    rec.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0 = never)")
    rec.add_argument("--count", type=int, default=0, help="stop after N depth messages (0 = never)")
    rec.set_defaults(func=cmd_record)

    rep = sub.add_parser("replay", help="publish a bag's image/camera_info into the node")
    rep.add_argument("bag", help="rosbag2 bag directory (MCAP or sqlite3)")
    rep.add_argument("--namespace", default="", help="namespace to publish image/camera_info in")
    rep.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    rep.add_argument("--restamp", action="store_true", help="stamp messages with the current time (not needed "
                     "by depth_node's defaults; for consumers that drop by node-clock age)")
    rep.add_argument("--loop", action="store_true", help="play the bag again and again")
    rep.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable")
    rep.set_defaults(func=cmd_replay)


def node_command(params_file: str | None, namespace: str = "", name: str = "depth_node",
                 remaps: list[str] = (), params: list[str] = (), extra: list[str] = ()) -> list[str]:
    """The command launch_ros would exec for the Node action of launch/ppd.launch.py."""
    cmd = [sys.executable, "-m", "ppd_ros.ros.depth_node", "--ros-args", "-r", f"__node:={name}"]
    if namespace:
        cmd += ["-r", f"__ns:=/{namespace.strip('/')}"]
    if params_file:
        cmd += ["--params-file", str(Path(params_file).resolve())]
    for p in params:
        cmd += ["-p", p]
    for r in remaps:
        cmd += ["-r", r]
    return cmd + [a for a in extra if a != "--ros-args"]


def _ns_args(namespace: str) -> list[str]:
    return ["--ros-args", "-r", f"__ns:=/{namespace.strip('/')}"] if namespace.strip("/") else []


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cmd_run(args: argparse.Namespace) -> int:
    if args.params_file and not Path(args.params_file).is_file():
        print(f"ppd-ros run: params file not found: {args.params_file}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop the children on SIGTERM too, not only Ctrl-C
    node = subprocess.Popen(node_command(args.params_file, args.namespace, args.name, args.remap, args.param,
                                         args.ros_args))
    procs = [node]
    if args.record:  # this module as the entry point: starts without importing the other subcommands
        procs.append(subprocess.Popen([sys.executable, "-m", "ppd_ros.cli.ros", "record", "--out", args.record,
                                       "--namespace", args.namespace]))
    camera = None
    if args.camera:
        camera = subprocess.Popen([sys.executable, "-m", "ppd_ros.ros.camera_sim", *args.camera,
                                   "--rate", str(args.camera_rate), "--width", str(args.camera_width),
                                   "--count", str(args.camera_count), *_ns_args(args.namespace)])
        procs.insert(0, camera)  # stopped first: no frames arrive while the node shuts down
    t_end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    try:
        while node.poll() is None and time.monotonic() < t_end:
            if camera is not None and camera.poll() is not None and args.camera_count and args.duration <= 0:
                time.sleep(3.0)  # a finite camera is done: let the last frames through, then stop
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        _stop([p for p in procs if p is not node])
        _stop([node])
    return node.returncode if node.returncode not in (None, -signal.SIGINT) else 0


def cmd_record(args: argparse.Namespace) -> int:
    from ..ros.bag_io import RECORD_TOPICS, record
    counts = record(args.out, args.namespace, args.topics or list(RECORD_TOPICS), args.storage, args.qos,
                    args.duration, args.count)
    print(f"ppd-ros record: {args.out}: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    if not os.path.exists(args.bag):
        print(f"ppd-ros replay: bag not found: {args.bag}", file=sys.stderr)
        return 2
    from ..ros.bag_io import replay
    sent = replay(args.bag, args.namespace, args.rate, args.restamp, args.loop, args.qos)
    print(f"ppd-ros replay: {sent} messages published")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ppd_ros.cli.ros run|record|replay ...`` (same as ``ppd-ros``, fewer imports)."""
    ap = argparse.ArgumentParser(prog="ppd-ros")
    add_parser(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
