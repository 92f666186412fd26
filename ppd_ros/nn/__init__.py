"""Shared transformer parts; every model in ppd_ros is composed from these."""
from .attention import Attention, attend
from .embeddings import TimestepEmbedder, sincos_2d_table, timestep_frequencies
from .layer_scale import LayerScale
from .mlp import Mlp, gelu_tanh
from .patch_embed import PatchEmbed
from .rope import RoPE2D, grid_positions
from .vit_block import AdaLNBlock, Block, modulate

__all__ = ["Attention", "attend", "TimestepEmbedder", "sincos_2d_table", "timestep_frequencies",
           "LayerScale", "Mlp", "gelu_tanh", "PatchEmbed", "RoPE2D", "grid_positions", "AdaLNBlock",
           "Block", "modulate"]
