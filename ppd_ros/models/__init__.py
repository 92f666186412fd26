"""nn.Module definitions, named exactly as the official checkpoints name them."""
from .dinov2 import DA2SemanticEncoder, DinoVisionTransformer
from .dit import DiT

__all__ = ["DA2SemanticEncoder", "DinoVisionTransformer", "DiT"]
