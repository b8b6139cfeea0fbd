"""An app written from docs/EMBEDDING.md works: the bare ai_edge_litert signature API, driven
exactly as the document says, matches same_edge.Codec bit for bit."""

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from same_edge import Codec


@pytest.fixture(scope="module")
def model_dir(export_dir):
    return export_dir("fp32")


def _doc_encode(model_dir, audio):
    m = json.loads((model_dir / "manifest.json").read_text())  # what an app reads
    chunk, hop = m["model"]["chunk_samples"], m["model"]["hop"]
    interpreter = Interpreter(str(model_dir / "encoder.tflite"))
    enc, flush = interpreter.get_signature_runner("encode_1"), interpreter.get_signature_runner("encode_flush")
    state, first, frames = np.zeros(m["encoder"]["state_shape"], np.float32), np.ones(1, np.float32), []
    padded = np.pad(audio, ((0, 0), (0, -audio.shape[1] % chunk)))
    for start in range(0, padded.shape[1], chunk):
        out = enc(audio=padded[:, start : start + chunk], state=state, first=first)
        state, latents = out["state"], out["latents"]
        frames.append(latents[:, m["encoder"]["start_skip_frames"] :] if first[0] else latents)
        first = np.zeros(1, np.float32)
    frames.append(flush(state=state)["latents"])
    return np.concatenate(frames, axis=1)[:, : -(-audio.shape[1] // hop)]


def _doc_decode(model_dir, z):
    m = json.loads((model_dir / "manifest.json").read_text())  # what an app reads
    fpc, hop = m["model"]["frames_per_chunk"], m["model"]["hop"]
    interpreter = Interpreter(str(model_dir / "decoder.tflite"))
    dec, flush = interpreter.get_signature_runner("decode_1"), interpreter.get_signature_runner("decode_flush")
    state = np.zeros(m["decoder"]["state_shape"], np.float32)
    context = np.zeros(m["decoder"]["context_shape"], np.float32)
    first, audio = np.ones(1, np.float32), []
    n = z.shape[1]
    keep = np.ones(-(-n // fpc) * fpc, np.float32)
    keep[n:] = 0.0  # an odd tail is padded in model space
    padded = np.pad(z, ((0, 0), (0, keep.size - n)))
    for start in range(0, padded.shape[1], fpc):
        out = dec(latents=padded[:, start : start + fpc], keep=keep[start : start + fpc], state=state, context=context,
                  first=first)
        state, context, y = out["state"], out["context"], out["audio"]
        audio.append(y[:, m["decoder"]["start_skip_samples"] :] if first[0] else y)
        first = np.zeros(1, np.float32)
    audio.append(flush(state=state, context=context)["audio"])
    return np.concatenate(audio, axis=1)[:, : n * hop]


@pytest.mark.parametrize("samples", [3000, 21714, 6 * 8192])
def test_documented_encoder_loop_matches_codec_bit_for_bit(model_dir, samples):
    audio = np.random.default_rng(samples).normal(0, 0.1, (2, samples)).astype(np.float32)
    enc = Codec.load(model_dir).stream_encoder()  # window 1, as the document's loop
    expected = np.concatenate([enc.push(audio), enc.flush()], axis=1)
    assert np.array_equal(_doc_encode(model_dir, audio), expected)


@pytest.mark.parametrize("frames", [1, 5, 6])
def test_documented_decoder_loop_matches_codec_bit_for_bit(model_dir, frames):
    z = np.random.default_rng(frames).normal(0, 1, (8, frames)).astype(np.float32)
    dec = Codec.load(model_dir).stream_decoder()
    expected = np.concatenate([dec.push(z), dec.flush()], axis=1)
    assert np.array_equal(_doc_decode(model_dir, z), expected)
