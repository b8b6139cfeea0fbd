"""Quality of an exported model on held-out music, against a PCA codec of the same latent size.

    python -m same_edge_recipes.demo.evaluate --model models/demo --data build/demo-train/data --out report.json

Held-out: the Frozen Bubble soundtrack (``frozen-bubble-data``: a different composer and
production from the Planet Blupi training music). Mel distance, SI-SDR and SNR on the whole tracks;
ViSQOL v3 MOS-LQO (audio mode, 48 kHz, ``visqol-python``) on ``VISQOL_EXCERPTS`` excerpts per
track, since it runs at about real time here.

Baseline: a per-frame PCA codec with as many components as the model has latent dims, on
4096-sample stereo frames (8192 values), fitted on the training music: the best linear codec of
the same frame rate and latent size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from same_edge import Codec
from same_edge.audio import read_audio
from same_edge.metrics import QualityMeter
from same_edge.models import demo_clip

from .data import SAMPLE_RATE, decode_tracks, fetch_sources, fetch_tracks

VISQOL_EXCERPTS = 3
VISQOL_SECONDS = 10.0
PCA_FIT_FRAMES = 16384


class PcaCodec:
    """Per-frame PCA: frames of ``hop`` stereo samples -> ``components`` coefficients -> frames."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray, hop: int) -> None:
        self.mean, self.basis, self.hop = mean, basis, hop  # basis [components, 2 * hop]

    @classmethod
    def fit(cls, data: np.ndarray, hop: int, components: int, frames: int = PCA_FIT_FRAMES, seed: int = 0) -> PcaCodec:
        """``data``: int16 [T, 2] training audio."""
        rng = np.random.default_rng(seed)
        starts = rng.integers(0, data.shape[0] - hop, frames)
        x = np.stack([data[s : s + hop].T.reshape(-1) for s in starts]).astype(np.float64) / 32768.0
        mean = x.mean(axis=0)
        cov = (x - mean).T @ (x - mean) / len(x)
        _, vecs = np.linalg.eigh(cov)
        return cls(mean.astype(np.float32), vecs[:, ::-1][:, :components].T.astype(np.float32), hop)

    def roundtrip(self, audio: np.ndarray) -> np.ndarray:
        """[2, T] -> [2, T]."""
        t = audio.shape[1]
        frames = -(-t // self.hop)
        x = np.pad(audio, ((0, 0), (0, frames * self.hop - t))).reshape(2, frames, self.hop)
        x = x.transpose(1, 0, 2).reshape(frames, -1) - self.mean
        y = (x @ self.basis.T) @ self.basis + self.mean
        return y.reshape(frames, 2, self.hop).transpose(1, 0, 2).reshape(2, -1)[:, :t]


def _visqol(ref: np.ndarray, test: np.ndarray, api) -> float:  # noqa: ANN001
    """MOS-LQO of a stereo excerpt (mono mix, resampled to ViSQOL's 48 kHz)."""
    r = soxr.resample(ref.mean(axis=0), SAMPLE_RATE, 48000)
    d = soxr.resample(test.mean(axis=0), SAMPLE_RATE, 48000)
    return float(api.measure_from_arrays(r.astype(np.float64), d.astype(np.float64), 48000).moslqo)


def evaluate(model_dir: Path, data_dir: Path) -> dict:
    from visqol.api import VisqolApi

    codec = Codec.load(model_dir)
    # The recipe's per-package caches, in order: the same audio as decoding every training track
    # again, without a second decode or an all-tracks cache that goes stale when the packages change.
    train = np.concatenate([decode_tracks(files, data_dir / f"{package}.npy")
                            for package, files in fetch_sources("train", data_dir).items()])
    pca = PcaCodec.fit(train, codec.hop, codec.latent_dim)
    api = VisqolApi()
    api.create(mode="audio")
    results = {name: {"meter": QualityMeter(SAMPLE_RATE), "visqol": []} for name in ("same-edge demo model", "PCA baseline")}
    tracks = fetch_tracks("heldout", data_dir)
    seconds = 0.0
    for track in tracks:
        audio, sr = sf.read(str(track), dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(audio.T)
        seconds += audio.shape[1] / sr
        outputs = {"same-edge demo model": codec.decode(codec.encode(audio))[:, : audio.shape[1]],
                   "PCA baseline": pca.roundtrip(audio)}
        n = int(VISQOL_SECONDS * SAMPLE_RATE)
        starts = np.linspace(0, audio.shape[1] - n, VISQOL_EXCERPTS + 2)[1:-1].astype(int)
        for name, y in outputs.items():
            results[name]["meter"].update(audio, y)
            results[name]["visqol"] += [_visqol(audio[:, s : s + n], y[:, s : s + n], api) for s in starts]
    clip = read_audio(demo_clip(model_dir), codec.sample_rate, codec.channels)[0]
    meter = QualityMeter(codec.sample_rate)
    meter.update(clip, codec.decode(codec.encode(clip))[:, : clip.shape[1]])
    report = {"clip": meter.result().as_dict(), "heldout": [t.name for t in tracks], "heldout_seconds": round(seconds, 1),
              "visqol_excerpts": f"{VISQOL_EXCERPTS} x {VISQOL_SECONDS:.0f} s per track", "systems": {}}
    for name, r in results.items():
        # Per excerpt too: ViSQOL clips at 1.0, and one excerpt at that floor moves a mean of six.
        report["systems"][name] = {**r["meter"].result().as_dict(), "visqol_moslqo": float(np.mean(r["visqol"])),
                                   "visqol_per_excerpt": [round(float(v), 3) for v in r["visqol"]],
                                   "mel_band_eighths": {k: [round(v, 3) for v in vals]
                                                        for k, vals in r["meter"].mel_bands(8).items()}}
    return report


def main() -> None:
    p = argparse.ArgumentParser(description="Held-out quality of an exported SAME against a PCA baseline.")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="data cache of the training recipe")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    report = evaluate(args.model, args.data)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
