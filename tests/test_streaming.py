"""Chained windows with their state equal the whole-sequence model: start, end, odd lengths, any push size."""

import numpy as np
import pytest
import torch

from conftest import rel_err
from same_edge import Codec

RNG = np.random.default_rng(1234)


@pytest.fixture(scope="module")
def codec(export_dir):
    return Codec.load(export_dir("fp32"))


def _whole_encode(model, audio):
    with torch.no_grad():
        z = model.encode(torch.from_numpy(audio)[None])[0].numpy()
    return z[:, : -(-audio.shape[1] // 4096)]


def _whole_decode(model, z):
    with torch.no_grad():
        return model.decode(torch.from_numpy(z)[None])[0].numpy()[:, : z.shape[1] * 4096]


@pytest.mark.parametrize("samples", [1, 255, 4096, 8191, 8192, 8193, 21714, 5 * 8192 + 77, 9 * 8192])
def test_offline_encode_equals_whole_sequence_model_for_any_length(codec, tiny_model, samples):
    audio = RNG.normal(0, 0.1, (2, samples)).astype(np.float32)
    z = codec.encode(audio)
    assert z.shape == (8, -(-samples // 4096))
    assert rel_err(_whole_encode(tiny_model, audio), z) <= 1e-4


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 7, 10, 19])
def test_offline_decode_equals_whole_sequence_model_for_any_length(codec, tiny_model, frames):
    z = RNG.normal(0, 1, (8, frames)).astype(np.float32)
    y = codec.decode(z)
    assert y.shape == (2, frames * 4096)
    assert rel_err(_whole_decode(tiny_model, z), y) <= 1e-4


def _push_sizes(total, rng, largest):
    sizes = []
    while total > 0:
        n = int(min(total, rng.integers(1, largest)))
        sizes.append(n)
        total -= n
    return sizes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_encode_with_random_push_sizes_equals_offline(codec, seed):
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, 0.1, (2, 7 * 8192 + int(rng.integers(0, 8192)))).astype(np.float32)
    enc = codec.stream_encoder()
    parts, pos = [], 0
    for n in _push_sizes(audio.shape[1], rng, 20000):
        parts.append(enc.push(audio[:, pos : pos + n]))
        pos += n
    parts.append(enc.flush())
    offline = codec.encode(audio)
    streamed = np.concatenate(parts, axis=1)
    assert streamed.shape == offline.shape
    assert rel_err(offline, streamed) <= 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_decode_with_random_push_sizes_equals_offline(codec, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1, (8, 13 + seed)).astype(np.float32)
    dec = codec.stream_decoder()
    parts, pos = [], 0
    for n in _push_sizes(z.shape[1], rng, 5):
        parts.append(dec.push(z[:, pos : pos + n]))
        pos += n
    parts.append(dec.flush())
    offline = codec.decode(z)
    streamed = np.concatenate(parts, axis=1)
    assert streamed.shape == offline.shape
    assert rel_err(offline, streamed) <= 1e-5


def test_streams_emit_frames_within_their_latency(codec):
    """A frame is returned no later than latency_samples after the audio that covers it arrived."""
    audio = RNG.normal(0, 0.1, (2, 12 * 4096)).astype(np.float32)
    enc = codec.stream_encoder()
    emitted, hop = 0, codec.hop
    for t in range(0, audio.shape[1], 1024):
        emitted += enc.push(audio[:, t : t + 1024]).shape[1]
        arrived = t + 1024
        # every frame whose first sample arrived at least latency_samples ago must be out
        due = max(0, (arrived - codec.latency_samples) // hop + 1) if arrived >= codec.latency_samples else 0
        assert emitted >= min(due, arrived // hop)
    assert codec.latency_samples == 3 * hop


def test_empty_streams_flush_to_nothing(codec):
    assert codec.stream_encoder().flush().shape == (8, 0)
    assert codec.stream_decoder().flush().shape == (2, 0)


@pytest.mark.parametrize(
    ("call", "bad", "message"),
    [
        ("encode", np.zeros((1, 100), np.float32), r"shape \[2, N\]"),
        ("encode", np.zeros((2, 100), np.float64), "float32"),
        ("encode", np.zeros((100, 2), np.float32), r"shape \[2, N\]"),
        ("encode", np.full((2, 100), np.nan, np.float32), "NaN or Inf"),
        ("decode", np.zeros((7, 3), np.float32), r"shape \[8, N\]"),
        ("decode", np.full((8, 3), np.inf, np.float32), "NaN or Inf"),
        ("encode", [[0.0] * 10] * 2, "numpy array"),
    ],
)
def test_bad_arrays_are_refused_with_a_clear_message(codec, call, bad, message):
    with pytest.raises(ValueError, match=message):
        getattr(codec, call)(bad)


def test_a_flushed_stream_refuses_more_input(codec):
    enc = codec.stream_encoder()
    enc.push(np.zeros((2, 5000), np.float32))
    enc.flush()
    with pytest.raises(ValueError, match="flushed"):
        enc.push(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="flushed"):
        enc.flush()


def test_a_codec_loaded_with_one_side_runs_that_side_and_names_the_missing_one(export_dir, codec):
    decoder_only = Codec.load(export_dir("fp32"), sides=("decoder",))
    z = RNG.normal(0, 1, (8, 3)).astype(np.float32)
    assert np.array_equal(decoder_only.decode(z), codec.decode(z))
    with pytest.raises(ValueError, match="without its encoder"):
        decoder_only.encode(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="sides must be"):
        Codec.load(export_dir("fp32"), sides=("speaker",))


def test_a_codec_loaded_without_a_thread_count_uses_every_available_core(export_dir):
    from same_edge.graph import available_cores

    assert Codec.load(export_dir("fp32")).threads == available_cores()
    assert Codec.load(export_dir("fp32"), threads=1).threads == 1
