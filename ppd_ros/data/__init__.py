"""Synthetic RGB-D data (procedural scenes, exact metric depth) and the bundled real test frames."""
from .synthetic import Frame, Scene, SynthConfig, make_frame, make_sequence, render

__all__ = ["Frame", "Scene", "SynthConfig", "make_frame", "make_sequence", "render"]
