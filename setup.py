"""pip packaging of the ROS-free core (models, pipelines, CLI). colcon uses CMakeLists.txt instead."""
from setuptools import find_packages, setup

setup(
    name="ppd_ros",
    version="0.1.0",
    description="Pixel-Perfect Depth (PPD / PPVD) with metric scale for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ppd_ros", "ppd_ros.*"]),
    package_data={"ppd_ros": ["weights/*.safetensors", "weights/*.json", "data/assets/*"]},
    install_requires=["torch", "numpy", "safetensors", "opencv-python-headless", "scipy", "scikit-learn", "tqdm",
                      "huggingface_hub"],
    entry_points={"console_scripts": [
        "ppd-ros = ppd_ros.cli:main",
        "depth_node = ppd_ros.ros.depth_node:main",
    ]},
)
