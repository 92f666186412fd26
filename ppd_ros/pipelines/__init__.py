"""Pipelines: frames in, typed results out (pure PyTorch/numpy, no ROS)."""
from .image import DepthResult, ImageStreamState, PPDPipeline

__all__ = ["DepthResult", "ImageStreamState", "PPDPipeline"]
