"""nn.Module definitions, named exactly as the official checkpoints name them."""
from .dinov2 import DA2SemanticEncoder, DinoVisionTransformer
from .dit import DiT
from .dit_video import DiT_Video
from .moge2 import MoGe2Model
from .pi3 import Pi3Semantic

__all__ = ["DA2SemanticEncoder", "DinoVisionTransformer", "DiT", "DiT_Video", "MoGe2Model", "Pi3Semantic"]
