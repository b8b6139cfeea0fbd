"""same-edge: run Stability AI's SAME music autoencoder on CPUs through LiteRT.

>>> from same_edge import Codec
>>> codec = Codec.load(model_dir)
>>> z = codec.encode(audio)   # [2, T] float32 at 44.1 kHz -> [256, ceil(T / 4096)] latents
>>> y = codec.decode(z)       # [256, L] -> [2, L * 4096]
"""

from .codec import Codec, StreamDecoder, StreamEncoder
from .manifest import Manifest, ModelDirError

__version__ = "0.1.0"
__all__ = ["Codec", "Manifest", "ModelDirError", "StreamDecoder", "StreamEncoder", "__version__"]
