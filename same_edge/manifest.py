"""The self-description of an exported model directory, readable without torch.

``manifest.json`` sits beside ``encoder.tflite`` and ``decoder.tflite``; the same description
(without the files' own hashes) is embedded in each graph's flatbuffer metadata under
``METADATA_KEY``, so a lone ``.tflite`` still says what it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "same-edge/1"
MANIFEST_NAME = "manifest.json"
METADATA_KEY = "same_edge.manifest"
GRAPH_FILES = {"encoder": "encoder.tflite", "decoder": "decoder.tflite"}


class ModelDirError(ValueError):
    """A model directory is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class Manifest:
    """Parsed ``manifest.json``. ``raw`` keeps every field; the properties are the ones the runtime uses."""

    raw: dict[str, Any]

    @property
    def sample_rate(self) -> int:
        return int(self.raw["model"]["sample_rate"])

    @property
    def channels(self) -> int:
        return int(self.raw["model"]["channels"])

    @property
    def latent_dim(self) -> int:
        return int(self.raw["model"]["latent_dim"])

    @property
    def hop(self) -> int:
        """Audio samples per latent frame."""
        return int(self.raw["model"]["hop"])

    @property
    def frames_per_chunk(self) -> int:
        return int(self.raw["model"]["frames_per_chunk"])

    @property
    def chunk_samples(self) -> int:
        return int(self.raw["model"]["chunk_samples"])

    @property
    def windows(self) -> list[int]:
        """Window sizes in chunks, ascending; each graph has one signature per size."""
        return sorted(int(w) for w in self.raw["windows"])

    @property
    def precision(self) -> str:
        return str(self.raw["precision"])

    @property
    def model_id(self) -> str:
        """Identity of the weights (config and checkpoint hashes), shared by every precision."""
        src = self.raw["source"]
        return f"{src['config_sha256'][:16]}-{src['checkpoint_sha256'][:16]}"

    def graph(self, side: str) -> dict[str, Any]:
        return self.raw[side]

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ModelDirError(f"not a {FORMAT} manifest")
        return cls(raw)


def read_manifest(model_dir: str | Path) -> Manifest:
    """Read and check ``DIR/manifest.json``; the graph files must exist beside it."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_NAME
    if not model_dir.is_dir():
        raise ModelDirError(f"model directory not found: {model_dir}")
    if not path.is_file():
        raise ModelDirError(f"{model_dir} has no {MANIFEST_NAME}: not a directory written by `same-edge export`")
    try:
        manifest = Manifest.from_json(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path} is not valid JSON ({e})") from None
    for side, name in GRAPH_FILES.items():
        if not (model_dir / name).is_file():
            raise ModelDirError(f"{model_dir} is missing {name}")
        if side not in manifest.raw:
            raise ModelDirError(f"{path} does not describe {name}")
    return manifest


def read_embedded_manifest(tflite_path: str | Path) -> dict[str, Any] | None:
    """The manifest embedded in a ``.tflite`` file's metadata, or None if it has none."""
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(tflite_path).read_bytes()
    try:
        model = schema.Model.GetRootAsModel(buf, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() is not None and entry.Name().decode() == METADATA_KEY:
                buffer = model.Buffers(entry.Buffer())
                if buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
                    return json.loads(buf[buffer.Offset() : buffer.Offset() + buffer.Size()].decode())
                return json.loads(bytes(buffer.DataAsNumpy()).decode())
    except Exception as e:  # a damaged flatbuffer raises anything from struct.error to IndexError
        raise ModelDirError(f"{tflite_path} is not a readable .tflite file ({e})") from None
    return None
