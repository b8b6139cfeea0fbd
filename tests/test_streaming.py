"""Chained windows with their state equal the whole-sequence model: start, end, odd lengths, any push size."""

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from conftest import GRAPH_TOLERANCE, rel_err
from same_edge import Codec, ConfigError, StreamError

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
    assert rel_err(_whole_encode(tiny_model, audio), z) <= GRAPH_TOLERANCE


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 7, 10, 19])
def test_offline_decode_equals_whole_sequence_model_for_any_length(codec, tiny_model, frames):
    z = RNG.normal(0, 1, (8, frames)).astype(np.float32)
    y = codec.decode(z)
    assert y.shape == (2, frames * 4096)
    assert rel_err(_whole_decode(tiny_model, z), y) <= GRAPH_TOLERANCE


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
    assert np.array_equal(offline, streamed)


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
    assert np.array_equal(offline, streamed)


def test_stream_latencies_are_what_the_streams_hold_back_measured_push_by_push(codec):
    """The declared latencies are measured: the most input a stream holds back without output."""
    hop, piece = codec.hop, 256
    audio = RNG.normal(0, 0.1, (2, 12 * 8192)).astype(np.float32)
    enc, n_in, n_out, worst = codec.stream_encoder(), 0, 0, 0
    for t in range(0, audio.shape[1], piece):
        n_out += enc.push(audio[:, t : t + piece]).shape[1]
        n_in += piece
        worst = max(worst, n_in - n_out * hop)
    assert worst + piece == codec.encoder_latency_samples == 3 * hop  # sampled just before each window runs
    z = RNG.normal(0, 1, (8, 12)).astype(np.float32)
    dec, n_out, worst = codec.stream_decoder(), 0, 0
    for f in range(z.shape[1]):
        n_out += dec.push(z[:, f : f + 1]).shape[1]
        worst = max(worst, (f + 1) * hop - n_out)
    assert worst == codec.decoder_latency_samples == hop + 17 * 256  # a frame, then the window's lag


def test_a_stream_made_by_its_class_or_by_the_codec_has_one_default_window_the_live_one(codec):
    from same_edge import StreamDecoder, StreamEncoder

    for made, by_codec in ((StreamEncoder(codec), codec.stream_encoder()), (StreamDecoder(codec), codec.stream_decoder())):
        assert made._windows == by_codec._windows == [1]
    assert StreamEncoder(codec, largest_window=None)._windows == list(codec.manifest.windows)


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
    with pytest.raises(StreamError, match=message):
        getattr(codec, call)(bad)


def test_a_flushed_stream_refuses_more_input(codec):
    enc = codec.stream_encoder()
    enc.push(np.zeros((2, 5000), np.float32))
    enc.flush()
    with pytest.raises(StreamError, match="flushed"):
        enc.push(np.zeros((2, 10), np.float32))
    with pytest.raises(StreamError, match="flushed"):
        enc.flush()


def test_a_codec_loaded_with_one_side_runs_that_side_and_names_the_missing_one(export_dir, codec):
    decoder_only = Codec.load(export_dir("fp32"), sides=("decoder",))
    z = RNG.normal(0, 1, (8, 3)).astype(np.float32)
    assert np.array_equal(decoder_only.decode(z), codec.decode(z))
    with pytest.raises(StreamError, match="without its encoder"):
        decoder_only.encode(np.zeros((2, 100), np.float32))
    with pytest.raises(ConfigError, match="sides must be"):
        Codec.load(export_dir("fp32"), sides=("speaker",))


def test_a_codec_loaded_without_a_thread_count_uses_every_available_core(export_dir):
    from same_edge.graph import available_cores

    assert Codec.load(export_dir("fp32")).threads == available_cores()
    assert Codec.load(export_dir("fp32"), threads=1).threads == 1


def test_a_stream_owns_what_it_was_given_so_a_refilled_input_buffer_changes_nothing(codec):
    """The audio-callback loop: one [2, 4096] buffer filled, pushed and refilled; one [8, 1] latent buffer."""
    audio = RNG.normal(0, 0.1, (2, 9 * 4096 + 100)).astype(np.float32)
    enc, buffer, frames = codec.stream_encoder(), np.empty((2, 4096), np.float32), []
    for start in range(0, audio.shape[1], 4096):
        piece = audio[:, start : start + 4096]
        buffer[:, : piece.shape[1]] = piece
        frames.append(enc.push(buffer[:, : piece.shape[1]]))
        buffer[:] = np.nan  # the caller reuses its buffer at once
    frames.append(enc.flush())
    assert np.array_equal(np.concatenate(frames, axis=1), codec.encode(audio))
    z = codec.encode(audio)
    dec, buffer, out = codec.stream_decoder(), np.empty((8, 1), np.float32), []
    for f in range(z.shape[1]):
        buffer[:, 0] = z[:, f]
        out.append(dec.push(buffer))
        buffer[:] = 1e3
    out.append(dec.flush())
    assert np.array_equal(np.concatenate(out, axis=1), codec.decode(z))


def test_one_codec_shared_by_threads_gives_every_thread_its_exact_result(codec):
    """4 threads x 4 calls each on one Codec, offline and streaming, encoders and decoders mixed."""
    from concurrent.futures import ThreadPoolExecutor

    inputs = [RNG.normal(0, 0.1, (2, 3 * 8192 + 17 * i)).astype(np.float32) for i in range(16)]
    expected_z = [codec.encode(a) for a in inputs]
    expected_y = [codec.decode(z) for z in expected_z]

    def work(i: int) -> bool:
        if i % 2:
            enc = codec.stream_encoder()
            z = np.concatenate([enc.push(inputs[i][:, :5000]), enc.push(inputs[i][:, 5000:]), enc.flush()], axis=1)
            return np.array_equal(z, expected_z[i]) and np.array_equal(codec.decode(expected_z[i]), expected_y[i])
        dec = codec.stream_decoder()
        y = np.concatenate([dec.push(expected_z[i][:, :3]), dec.push(expected_z[i][:, 3:]), dec.flush()], axis=1)
        return np.array_equal(y, expected_y[i]) and np.array_equal(codec.encode(inputs[i]), expected_z[i])

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(16)))


def test_an_encoder_stream_and_a_decoder_stream_run_on_two_threads_at_once(codec):
    """A capture thread encodes while a playback thread decodes, each through its own stream."""
    import threading

    audio = RNG.normal(0, 0.1, (2, 12 * 4096)).astype(np.float32)
    z = codec.encode(audio)
    got: dict[str, np.ndarray] = {}

    def capture() -> None:
        enc = codec.stream_encoder()
        got["z"] = np.concatenate([enc.push(audio[:, t : t + 4096]) for t in range(0, audio.shape[1], 4096)]
                                  + [enc.flush()], axis=1)

    def playback() -> None:
        dec = codec.stream_decoder()
        got["y"] = np.concatenate([dec.push(z[:, f : f + 1]) for f in range(z.shape[1])] + [dec.flush()], axis=1)

    threads = [threading.Thread(target=capture), threading.Thread(target=playback)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(got["z"], z) and np.array_equal(got["y"], codec.decode(z))


@contextmanager
def _pushed_on_another_thread(stream, monkeypatch):
    """While inside: another thread's push of a chunk is held inside the stream (in its window)."""
    import threading

    inside, release = threading.Event(), threading.Event()
    original = stream._window

    def slow_window(*args):
        inside.set()
        release.wait(10)
        return original(*args)

    monkeypatch.setattr(stream, "_window", slow_window)
    pusher = threading.Thread(target=stream.push, args=(np.zeros((2, 8192), np.float32),))
    pusher.start()
    assert inside.wait(10)
    try:
        yield
    finally:
        release.set()
        pusher.join()


def test_one_stream_pushed_from_two_threads_at_once_is_refused(codec, monkeypatch):
    enc = codec.stream_encoder()
    with _pushed_on_another_thread(enc, monkeypatch), pytest.raises(StreamError, match="another thread"):
        enc.push(np.zeros((2, 10), np.float32))


def test_latents_that_decode_to_non_finite_audio_are_an_error_and_the_stream_stays_failed():
    from same_edge import OutputError
    from same_edge.models import DEMO_MODEL_DIR

    codec = Codec.load(DEMO_MODEL_DIR, sides=("decoder",))
    dec = codec.stream_decoder()
    with pytest.raises(OutputError, match="NaN or Inf audio"):
        dec.push((RNG.normal(size=(256, 4)) * 1e37).astype(np.float32))  # finite, but far beyond any latent
    with pytest.raises(StreamError, match="failed earlier"):
        dec.flush()


@pytest.mark.parametrize("scale", [1e30, 1e37, 3e38])
def test_extreme_audio_never_encodes_to_non_finite_latents(codec, scale):
    from same_edge import OutputError

    audio = np.clip(RNG.normal(size=(2, 3 * 8192)) * scale, -3.4e38, 3.4e38).astype(np.float32)
    try:
        z = codec.encode(audio)
    except OutputError:
        return
    assert np.isfinite(z).all()


@pytest.mark.parametrize("samples", [1, 4095, 4096, 4097, 3 * 8192 + 77])
def test_streams_return_exactly_one_frame_per_hop_begun_and_one_hop_per_frame(samples):
    """What a stream trims from its start and its end: too much or too little shows in the counts
    (on the bundled model: no export in the way)."""
    from same_edge.models import DEMO_MODEL_DIR

    codec = Codec.load(DEMO_MODEL_DIR, threads=1)
    audio = np.random.default_rng(samples).normal(0, 0.1, (codec.channels, samples)).astype(np.float32)
    enc = codec.stream_encoder()
    z = np.concatenate([enc.push(audio[:, :samples // 2]), enc.push(audio[:, samples // 2:]), enc.flush()], axis=1)
    assert z.shape == (codec.latent_dim, -(-samples // codec.hop))
    dec = codec.stream_decoder()
    y = np.concatenate([dec.push(z[:, :1]), dec.push(z[:, 1:]), dec.flush()], axis=1)
    assert y.shape == (codec.channels, z.shape[1] * codec.hop)


def _make_stream(codec, side, largest_window):
    return codec.stream_encoder(largest_window) if side == "encoder" else codec.stream_decoder(largest_window)


def _song(side, seed):
    """An encoder's audio or a decoder's latents, of an odd length (a partial chunk stays pending)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.1, (2, 5 * 8192 + 1234)) if side == "encoder" else rng.normal(0, 1, (8, 11))).astype(np.float32)


def _pushed(stream, x, pieces=3):
    """Push ``x`` in ``pieces`` uneven blocks, then flush: the whole output."""
    cuts = sorted({x.shape[1] * i * i // (pieces * pieces) for i in range(1, pieces)})
    return np.concatenate([stream.push(part) for part in np.split(x, cuts, axis=1)] + [stream.flush()], axis=1)


def _fail_a_push(stream, x):
    """Push ``x`` through windows that run (state carried) but return non-finite output: an OutputError."""
    from same_edge import OutputError

    original = stream._window
    stream._window = lambda *args: original(*args) * np.float32(np.inf)
    try:
        with pytest.raises(OutputError):
            stream.push(x)
    finally:
        del stream._window
    with pytest.raises(StreamError, match="failed earlier"):
        stream.push(x)


@pytest.mark.parametrize("largest_window", [1, None])
@pytest.mark.parametrize("side", ["encoder", "decoder"])
@pytest.mark.parametrize("before", ["mid-stream", "after flush", "after a failed push"])
def test_a_reset_stream_gives_a_new_streams_output_bit_for_bit(codec, side, largest_window, before):
    first, second = _song(side, 1), _song(side, 2)
    stream = _make_stream(codec, side, largest_window)
    if before == "mid-stream":
        stream.push(first[:, : first.shape[1] * 2 // 3])  # state carried, input pending
    elif before == "after flush":
        _pushed(stream, first)
    else:
        _fail_a_push(stream, first)
    stream.reset()
    expected = _pushed(_make_stream(codec, side, largest_window), second)
    assert np.array_equal(_pushed(stream, second), expected)
    stream.reset()  # and again, after a reset stream's own flush
    assert np.array_equal(_pushed(stream, second), expected)


@pytest.mark.parametrize("side", ["encoder", "decoder"])
def test_a_reset_allocates_nothing_it_zeroes_the_streams_own_arrays(codec, side):
    x = _song(side, 3)
    stream = _make_stream(codec, side, 1)
    stream.push(x[:, : x.shape[1] // 2 + 1])
    arrays = {name: getattr(stream, name) for name in ("_state", "_pending", "_context") if hasattr(stream, name)}
    assert len(arrays) == (2 if side == "encoder" else 3) and any(a.any() for a in arrays.values())
    stream.reset()
    for name, array in arrays.items():
        assert getattr(stream, name) is array and not array.any(), name
    assert (stream._pending_len, stream._in_total, stream._out_total, stream._first) == (0, 0, 0, True)


def test_a_reset_while_another_thread_pushes_is_refused(codec, monkeypatch):
    enc = codec.stream_encoder()
    with _pushed_on_another_thread(enc, monkeypatch), pytest.raises(StreamError, match="another thread"):
        enc.reset()
    assert enc._in_total == 8192  # the push went on, untouched
    enc.reset()  # free again: accepted
    assert enc._in_total == 0


def test_a_reset_after_the_codec_is_closed_is_refused(export_dir):
    codec = Codec.load(export_dir("fp32"), threads=1)
    dec = codec.stream_decoder()
    codec.close()
    with pytest.raises(StreamError, match="closed"):
        dec.reset()
