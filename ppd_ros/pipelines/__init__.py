"""Pipelines: frames in, typed results out (pure PyTorch/numpy, no ROS)."""
from .image import DepthResult, ImageStreamState, PPDPipeline
from .metric import (MetricConfig, MetricResult, MetricStage, MetricState, SharedMoGe2, ppd_with_moge2,
                     ppd_with_moge2_from_checkpoints)
from .video import PPVDPipeline
from .video_stream import VideoStreamState
from .moge import MoGe2Prediction, MoGe2Runner, infer, load_moge2

__all__ = ["DepthResult", "ImageStreamState", "PPDPipeline", "MetricConfig", "MetricResult", "MetricStage",
           "MetricState", "SharedMoGe2", "ppd_with_moge2", "ppd_with_moge2_from_checkpoints", "MoGe2Prediction",
           "MoGe2Runner", "infer", "load_moge2", "PPVDPipeline", "VideoStreamState"]
