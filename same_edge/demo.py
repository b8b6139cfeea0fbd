"""The demo: stream a music clip through a model as a live app would, measure it, and draw it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AudioReader, AudioWriter
from .codec import Codec
from .errors import AudioFileError, ModelDirError
from .files import StreamStats, rechunk, stream_through
from .metrics import QualityMeter
from .models import demo_clip
from .spectrogram import plotting_available, save_comparison

QUALITY_REPORT = "quality.json"


@dataclass(frozen=True)
class SystemQuality:
    mel_distance: float
    visqol_moslqo: float
    snr_db: float


@dataclass(frozen=True)
class HeldoutQuality:
    """A model directory's ``quality.json``: its measured quality on held-out music, beside a baseline."""

    seconds: float
    systems: dict[str, SystemQuality]


@dataclass(frozen=True)
class DemoResult:
    clip: Path
    stream: StreamStats  # window-1 stream of the clip in one-hop blocks, with quality against the clip
    reconstruction: Path
    picture: Path | None  # None where matplotlib is not installed
    heldout: HeldoutQuality | None


class _KeepingWriter:
    """An audio writer that also keeps what it writes (the demo clip is short)."""

    def __init__(self, writer: AudioWriter) -> None:
        self.writer, self.blocks = writer, []

    def write(self, block: np.ndarray) -> None:
        self.writer.write(block)
        self.blocks.append(block)


def read_heldout_quality(model_dir: str | Path) -> HeldoutQuality | None:
    """The model's ``quality.json`` (written by the demo recipe's evaluation); None if it has none."""
    path = Path(model_dir) / QUALITY_REPORT
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
        systems = {str(name): SystemQuality(float(r["mel_distance"]), float(r["visqol_moslqo"]), float(r["snr_db"]))
                   for name, r in report["systems"].items()}
        return HeldoutQuality(float(report["heldout_seconds"]), systems)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelDirError(f"{path}: not a quality report of the demo recipe ({type(e).__name__}: {e})") from None


def run_demo(codec: Codec, out_dir: str | Path, clip: str | Path | None = None) -> DemoResult:
    """Stream ``clip`` (default: the model's or the bundled demo clip) through ``codec`` in one-hop
    blocks with window 1; write ``out_dir/reconstruction.wav`` and, with matplotlib,
    ``out_dir/spectrograms.png``. Both files are written or neither."""
    clip_path = Path(clip) if clip is not None else demo_clip(codec.model_dir)
    if clip_path is None:
        raise AudioFileError("no demo clip found (clip.flac in the model directory or the package); pass a clip")
    # Read first: a bad one writes nothing. A Codec.from_bytes has no directory, so no report.
    heldout = read_heldout_quality(codec.model_dir) if codec.model_dir is not None else None
    out_dir = Path(out_dir)
    wav, picture = out_dir / "reconstruction.wav", out_dir / "spectrograms.png"
    original = AudioReader(clip_path, codec.sample_rate, codec.channels, downmix=True).read_all()
    meter = QualityMeter(codec.sample_rate)
    with AudioWriter(wav, codec.sample_rate, codec.channels) as writer:
        kept = _KeepingWriter(writer)
        stats = stream_through(codec, rechunk([original], codec.hop), kept, meter, block=codec.hop)
        if plotting_available():
            save_comparison(picture, original, np.concatenate(kept.blocks, axis=1), codec.sample_rate)
    return DemoResult(clip_path, stats, wav, picture if plotting_available() else None, heldout)
