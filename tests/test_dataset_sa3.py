"""``encode-dataset --format sa3`` against what Stable Audio 3's own pre-encoder writes, field by field.

``sa3_pre_encoder`` below builds, for one clip, the ``.npy`` and ``.json`` that SA3's
``scripts/pre_encode_dataset.py`` writes (github.com/Stability-AI/stable-audio-3, MIT), from the
rules of that script and of the code it calls (``SampleDataset``, ``PadCrop_Normalized_T``,
``AutoencoderModel.encode``), each cited where it is applied. Only the crop offset (SA3: random;
here 0), the phase flip (SA3: random) and the resampler's filter differ by design; the encoder
itself is the same ``Codec``, so every frame must agree to float rounding.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from same_edge import Codec
from same_edge.audio import AudioReader
from same_edge.dataset import FILELIST, SA3_DEFAULT_SAMPLE_SIZE, SILENCE, DatasetOptions, encode_dataset

SR = 44100
REPO = Path(__file__).resolve().parent.parent
ODD = 200_000  # ceil(200000 / 4096) = 49 frames: odd, so SA3's encoder pads to 50


@pytest.fixture(scope="module")
def model(export_dir) -> Path:
    return export_dir("fp32")


@pytest.fixture(scope="module")
def codec(model) -> Codec:
    return Codec.load(model, threads=1, sides=("encoder",))


def _music(samples: int, seed: int, peak: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    x = np.sin(2 * np.pi * (150 + 60 * seed) * t) * np.exp(-(t % 0.3) * 4) + 0.1 * rng.normal(size=samples)
    x = peak * x / np.abs(x).max()
    return np.stack([x, 0.8 * x], axis=1).astype(np.float32)


# Clips: name -> (samples at their own rate, rate, peak). Each is captioned unless named otherwise.
CLIPS = {
    "short.flac": (30_000, SR, 0.5),           # 7.3 frames, 8 encoded: the last ends a chunk, with silence after it
    "loud.wav": (40_000, SR, 3.0),              # float WAV beyond +-1: SA3 clamps before encoding
    "resampled.wav": (30_000, 48_000, 0.5),     # 27562.5 samples at 44.1 kHz: torchaudio keeps 27563, soxr 27562
    "mid.wav": (98_000, SR, 0.5),               # shorter than ODD: 25 valid frames of 50, not ceil(98000 / 4096) = 24
    "long.flac": (230_000, SR, 0.5),            # longer than ODD: cropped
    "uncaptioned.flac": (20_000, SR, 0.5),      # no .txt: SA3 would return another random clip in its place
    "blank.flac": (20_000, SR, 0.5),            # a .txt of whitespace only: no caption either
}


def _prompt(name: str) -> str | None:
    return None if name in ("uncaptioned.flac", "blank.flac") else f"a clip named {name}"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sa3-in")
    for i, (name, (samples, rate, peak)) in enumerate(CLIPS.items()):
        p = root / name
        sf.write(p, _music(samples, i, peak), rate, subtype="FLOAT" if p.suffix == ".wav" else None)
        if _prompt(name) is not None:
            p.with_suffix(".txt").write_text(f"\n  {_prompt(name)} \t\n")
    (root / "blank.txt").write_text("  \n\t \n")
    return root.resolve()


RUNS = {"own length": (None, False), "odd, padded": (ODD, True), "odd, cut": (ODD, False)}


@pytest.fixture(scope="module")
def outputs(library, model, tmp_path_factory) -> dict[str, Path]:
    """OUT of one run per (sample size, pad) in RUNS."""
    outs = {}
    for name, (size, pad) in RUNS.items():
        out = tmp_path_factory.mktemp("sa3-out")
        encode_dataset(library, out, DatasetOptions(model=model, workers=1, threads=1, format="sa3", sample_size=size, pad=pad,
                       progress=False))
        outs[name] = out
    return outs


def sa3_pre_encoder(codec: Codec, src: Path, rel: str, sample_size: int, pad: bool,
                    prompt: str) -> tuple[np.ndarray, dict]:
    """The ``.npy`` array and the ``.json`` object SA3's pre_encode_dataset.py writes for ``src``
    (crop offset 0, no phase flip), from its rules."""
    import torch

    sr, chunk = codec.sample_rate, codec.manifest.model.chunk_samples
    info = sf.info(os.fsencode(src))
    # SampleDataset.load_file: torchaudio.load, then T.Resample, which returns ceil(n * new / orig) samples.
    length = -(-info.frames * sr // info.samplerate)
    audio = AudioReader(src, sr, codec.channels).read_all()  # the samples: ours (SA3's filter differs)
    audio = np.pad(audio, ((0, 0), (0, max(0, length - audio.shape[1]))))[:, :length]
    # PadCrop_Normalized_T(sample_size, sr, randomize=True, pad=True): offset 0 here; the window and the
    # sample mask (ones over the audio, zeros over the padding); times from the resampled length.
    upper = max(0, length - sample_size)
    timestamps = [0 / (upper + sample_size), (0 + sample_size) / (upper + sample_size)]
    seconds_start, seconds_total = math.floor(0 / sr), math.ceil(length / sr)
    x = np.zeros((codec.channels, sample_size), np.float32)
    x[:, : min(length, sample_size)] = audio[:, :sample_size]
    mask = torch.zeros(sample_size)
    mask[: min(length, sample_size)] = 1
    # SampleDataset.__getitem__: audio.clamp(-1, 1) after the augmentations.
    x = np.clip(x, -1, 1)
    # AutoencoderModel.encode: zero-padded to a multiple of the hop (min_length), and the SAME encoder
    # zero-pads to whole attention chunks (_zero_pad_modulo_sequence) and returns every frame.
    x = np.pad(x, ((0, 0), (0, -(-sample_size // chunk) * chunk - sample_size)))
    z = codec.encode(np.ascontiguousarray(x))
    # pre_encode_dataset.py: the sample mask resized to the latent frames by nearest neighbour; without
    # --pad, the latents and the mask cut after the last valid frame.
    m = torch.nn.functional.interpolate(mask[None, None], size=z.shape[-1], mode="nearest")[0, 0].int().numpy()
    if not pad:
        valid = np.where(m == 1)[0]
        if len(valid):
            z, m = z[:, : valid[-1] + 1], m[: valid[-1] + 1]
    meta = {"path": str(src), "relpath": rel, "timestamps": timestamps, "seconds_start": seconds_start,
            "seconds_total": seconds_total, "padding_mask": m.tolist(), "sample_rate": sr, "load_time": 0.0,
            "prompt": prompt}
    return z, meta


def sa3_silence(codec: Codec, sample_size: int) -> np.ndarray:
    """SA3's silence.npy: ae.encode(torch.zeros(1, io_channels, sample_size)), batch axis kept."""
    chunk = codec.manifest.model.chunk_samples
    return codec.encode(np.zeros((codec.channels, -(-sample_size // chunk) * chunk), np.float32))[None]


def assert_written_as_sa3_writes(out: Path, rel: str, expected: tuple[np.ndarray, dict]) -> None:
    z_sa3, meta_sa3 = expected
    z = np.load(out / (rel + ".npy"))
    meta = json.loads((out / (rel + ".json")).read_text(encoding="utf-8"))
    assert z.dtype == np.float32 and z.shape == z_sa3.shape, (z.shape, z_sa3.shape)
    np.testing.assert_allclose(z, z_sa3, rtol=1e-4, atol=1e-5)  # one codec: stream and offline agree to rounding
    # Every key SA3 writes, with SA3's value and type; load_time (a timing, never the same twice) left out;
    # model_id and precision are ours.
    assert set(meta) == set(meta_sa3) - {"load_time"} | {"model_id", "precision"}
    for key, value in meta_sa3.items():
        if key != "load_time":
            assert meta[key] == value and type(meta[key]) is type(value), (key, meta[key], value)
    assert all(type(v) is int for v in meta["padding_mask"])


def _expected(codec: Codec, library: Path, name: str, run: str) -> tuple[np.ndarray, dict]:
    size, pad = RUNS[run]
    return sa3_pre_encoder(codec, library / name, name, size or SA3_DEFAULT_SAMPLE_SIZE, pad, _prompt(name))


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["odd, padded", "odd, cut"])
def test_sa3_odd_frame_counts_keep_the_frame_sa3s_encoder_pads_to_and_its_mask(outputs, library, codec, run):
    out = outputs[run]
    for name in ("long.flac", "mid.wav", "short.flac"):
        assert_written_as_sa3_writes(out, name, _expected(codec, library, name, run))
    assert np.load(out / "long.flac.npy").shape == (codec.latent_dim, 50)  # not 49
    silence = np.load(out / SILENCE)
    assert silence.shape == (1, codec.latent_dim, 50)
    np.testing.assert_allclose(silence, sa3_silence(codec, ODD), rtol=1e-4, atol=1e-5)


def test_sa3_a_clip_at_its_own_length_has_its_last_frame_encoded_with_the_silence_sa3_pads_after_it(
        outputs, library, codec):
    out = outputs["own length"]
    z_sa3, _ = expected = _expected(codec, library, "short.flac", "own length")
    assert z_sa3.shape[1] == math.ceil(30_000 / codec.hop) == 8
    assert_written_as_sa3_writes(out, "short.flac", expected)
    silence = np.load(out / SILENCE)
    assert silence.shape == (1, codec.latent_dim, SA3_DEFAULT_SAMPLE_SIZE // codec.hop)


def test_sa3_audio_beyond_plus_minus_one_is_clamped_before_encoding(outputs, library, codec):
    for run in RUNS:
        assert_written_as_sa3_writes(outputs[run], "loud.wav", _expected(codec, library, "loud.wav", run))


def test_sa3_resampled_input_has_sa3s_length_window_and_mask(outputs, library, codec):
    for run in RUNS:
        assert_written_as_sa3_writes(outputs[run], "resampled.wav", _expected(codec, library, "resampled.wav", run))


def test_sa3_every_captioned_clip_of_every_run_is_what_sa3s_pre_encoder_writes(outputs, library, codec):
    for run, out in outputs.items():
        for name in CLIPS:
            if _prompt(name) is not None:
                assert_written_as_sa3_writes(out, name, _expected(codec, library, name, run))


def test_sa3_clips_without_a_caption_or_with_a_blank_one_are_not_encoded_nor_listed(outputs):
    # SA3's caption_metadata_fn rejects a clip without a .txt and SampleDataset returns another random
    # clip in its place: no sample of its own. A blank caption is no caption either.
    for out in outputs.values():
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["uncaptioned"], summary["failed"]) == (2, 0)
        assert not list(out.glob("uncaptioned.*")) and not list(out.glob("blank.*"))
        assert (out / FILELIST).read_text().splitlines() == sorted(n + ".npy" for n in CLIPS if _prompt(n) is not None)


def _sa3_run(src: Path, out: Path, model: Path, **kw):
    return encode_dataset(src, out, DatasetOptions(model=model, workers=1, threads=1, format="sa3", sample_size=8192,
                          progress=False, **kw))


def test_sa3_filelist_lists_exactly_what_this_runs_inputs_produce(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(("a", "b", "c", "d")):
        sf.write(src / f"{name}.flac", _music(10_000, i), SR)
        (src / f"{name}.txt").write_text(f"caption {name}")
    s = _sa3_run(src, tmp_path / "out", model)
    assert s.encoded == 4
    (src / "a.txt").unlink()  # its caption deleted: a captionless clip now
    (src / "b.flac").unlink()  # its source deleted
    (src / "c.txt").write_text(" \n")  # its caption blanked
    s = _sa3_run(src, tmp_path / "out", model)
    assert (s.encoded, s.skipped, s.uncaptioned) == (0, 1, 2)
    assert (tmp_path / "out" / FILELIST).read_text() == "d.flac.npy\n"


def test_sa3_a_name_with_a_line_break_or_edge_whitespace_is_a_recorded_failure_not_a_broken_filelist(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    names = ["two\nlines.wav", "carriage\rreturn.wav", " leading space.wav", "ok.wav"]
    for i, name in enumerate(names):
        sf.write(src / name, _music(10_000, i), SR)
    s = _sa3_run(src, tmp_path / "out", model, uncaptioned="empty")
    assert (s.encoded, s.failed) == (1, 3)
    failures = {f["relpath"]: f["reason"] for f in map(json.loads, (tmp_path / "out" / "failures.jsonl").read_text()
                                                        .splitlines())}
    assert sorted(failures) == sorted(names[:3]) and all("filelist.txt" in r for r in failures.values())
    assert (tmp_path / "out" / FILELIST).read_text() == "ok.wav.npy\n"


def test_the_datasets_doc_trains_same_s_latents_with_a_same_s_model_and_tells_what_sa3_does_without_captions():
    text = (REPO / "docs" / "DATASETS.md").read_text(encoding="utf-8")
    # stable_audio_3/model_configs.py: small-music(-base) and small-sfx(-base) run on SAME-S, medium(-base) on SAME-L.
    base_models = {"same-s": {"small-music-base", "small-sfx-base"}, "same-l": {"medium-base"}}
    trained = 0
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for name in re.findall(r"train_lora\.py --model (\S+)", block):
            codec = "same-l" if "same-l" in block.lower() else "same-s"
            assert name in base_models[codec], (name, codec)
            trained += 1
    assert trained >= 1
    assert "another random clip" in text and "rejects captionless" not in text
