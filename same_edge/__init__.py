"""same-edge: run Stability AI's SAME music autoencoder on CPUs through LiteRT.

>>> from same_edge import Codec
>>> codec = Codec.load(model_dir)
>>> z = codec.encode(audio)   # [2, T] float32 at 44.1 kHz -> [256, ceil(T / 4096)] latents
>>> y = codec.decode(z)       # [256, L] -> [2, L * 4096]
>>> same_edge.encode_file(codec, "song.flac", "song.npz")   # files, block by block
>>> same_edge.encode_dataset("music/", "latents/", same_edge.DatasetOptions(format="sa3"))  # libraries

The package holds the runtime (no torch): ``codec`` and its streams, ``graph`` (LiteRT),
``manifest``, the file formats (``audio``, ``latents``), ``files``, ``dataset``, the command line
and its ``demo`` (with ``spectrogram``: the bundled model's showcase ships with the runtime).
"""

from pathlib import Path as _Path

# The one version of the package, libsame_edge, its CMake project and soname: same_edge/VERSION.
__version__ = _Path(__file__).with_name("VERSION").read_text(encoding="ascii").strip()


from .codec import Codec, StreamDecoder, StreamEncoder
from .dataset import DatasetError, DatasetOptions, DatasetSummary, encode_dataset
from .errors import AudioFileError, ConfigError, Error, LatentFileError, ModelDirError, OutputError, StreamError
from .files import (
    AudioStats,
    DecodeStats,
    EncodeStats,
    RoundtripStats,
    StreamStats,
    decode_file,
    encode_file,
    roundtrip_file,
    stream_file,
)
from .latents import LatentFile, LatentHeader
from .manifest import Manifest, read_manifest
from .metrics import Quality, QualityMeter

__all__ = [
    "AudioFileError",
    "AudioStats",
    "Codec",
    "ConfigError",
    "DatasetError",
    "DatasetOptions",
    "DatasetSummary",
    "DecodeStats",
    "EncodeStats",
    "Error",
    "LatentFile",
    "LatentFileError",
    "LatentHeader",
    "Manifest",
    "ModelDirError",
    "OutputError",
    "Quality",
    "QualityMeter",
    "RoundtripStats",
    "StreamDecoder",
    "StreamEncoder",
    "StreamError",
    "StreamStats",
    "__version__",
    "decode_file",
    "encode_dataset",
    "encode_file",
    "read_manifest",
    "roundtrip_file",
    "stream_file",
]
