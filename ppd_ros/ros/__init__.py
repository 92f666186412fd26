"""ROS 2 adapter: the only sub-package of ppd_ros that imports rclpy or ROS message types.

Nothing but imports: message conversions, camera_info pairing and the latest-frame mailbox. The
node lives in ``ppd_ros.ros.depth_node``, bag I/O in ``ppd_ros.ros.bag``, the `status` message in
``ppd_ros.ros.messages``.
"""
from .conversions import (  # noqa: F401
    camera_info_to_intrinsics, check_camera_info_matches, cloud_to_msg, compressed_to_rgb, depth_to_image_msg,
    image_msg_to_depth, image_to_rgb, intrinsics_to_camera_info, msg_to_cloud, rgb_to_image_msg,
)
from .frame_mailbox import FrameMailbox  # noqa: F401
from .sync import ApproxTimePairer  # noqa: F401
