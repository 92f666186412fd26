"""ppd_ros: Pixel-Perfect Depth (image and video) with metric scale, for ROS 2.

Importing this package has no side effects and needs no ROS; ``ppd_ros.ros`` is the only
sub-package that imports rclpy.
"""
from .config import DiTConfig, InferenceConfig, ViTConfig, preset
from .errors import CameraInfoMismatch, CheckpointError, CheckpointMismatch, InputError, PPDError, UnsupportedEncoding

__version__ = "0.1.0"

__all__ = ["DiTConfig", "InferenceConfig", "ViTConfig", "preset", "CameraInfoMismatch", "CheckpointError",
           "CheckpointMismatch", "InputError", "PPDError", "UnsupportedEncoding", "__version__"]
