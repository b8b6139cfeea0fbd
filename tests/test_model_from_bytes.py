"""Codec.from_bytes: a model an app holds in memory loads as its directory does, computes the same
outputs bit for bit and refuses the same damaged inputs, naming them "encoder.tflite (from memory)"."""

import json

import numpy as np
import pytest

from same_edge import Codec, ConfigError, LatentFile, LatentFileError, LatentHeader, ModelDirError, StreamError
from same_edge.models import DEMO_MODEL_DIR

MANIFEST, ENCODER, DECODER = "manifest.json", "encoder.tflite", "decoder.tflite"


def _files(model_dir) -> dict[str, bytes]:
    return {name: (model_dir / name).read_bytes() for name in (MANIFEST, ENCODER, DECODER)}


def _from_bytes(files: dict[str, bytes], **options) -> Codec:
    return Codec.from_bytes(files[MANIFEST], files.get(ENCODER), files.get(DECODER), **options)


def _outputs(codec: Codec) -> list[np.ndarray]:
    """Offline encode and decode, and window-1 streams of both, of an odd length of audio."""
    audio = np.random.default_rng(7).normal(0, 0.1, (codec.channels, 3 * codec.hop + 1001)).astype(np.float32)
    z = codec.encode(audio)
    enc, dec = codec.stream_encoder(), codec.stream_decoder()
    streamed_z = np.concatenate([enc.push(audio[:, :5000]), enc.push(audio[:, 5000:]), enc.flush()], axis=1)
    streamed_y = np.concatenate([dec.push(z[:, :1]), dec.push(z[:, 1:]), dec.flush()], axis=1)
    return [z, codec.decode(z), streamed_z, streamed_y]


@pytest.fixture(params=["demo", "tiny fp32"])
def model_dir(request):
    return DEMO_MODEL_DIR if request.param == "demo" else request.getfixturevalue("export_dir")("fp32")


def test_a_codec_from_bytes_computes_what_the_directory_load_computes_bit_for_bit(model_dir):
    expected = _outputs(Codec.load(model_dir, threads=2))
    codec = _from_bytes(_files(model_dir), threads=2)
    assert codec.model_dir is None and codec.sides == ("encoder", "decoder") and codec.threads == 2
    for got, want in zip(_outputs(codec), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :]


def _edited(files: dict[str, bytes], edit) -> bytes:
    raw = json.loads(files[MANIFEST])
    edit(raw)
    return json.dumps(raw).encode()


# name: (damage to the files, verify, what the refusal says, whether the directory's message is the same but for the source)
DAMAGES = {
    "a truncated graph": (lambda f: {ENCODER: f[ENCODER][:4096]}, True,
                          r"encoder\.tflite \(from memory\) is 4096 bytes, the manifest says \d+", True),
    "a flipped byte": (lambda f: {ENCODER: _flipped(f[ENCODER], len(f[ENCODER]) // 2)}, True,
                       r"encoder\.tflite \(from memory\) does not match the sha256 in the manifest", True),
    "a flipped byte of the structure, unverified": (lambda f: {DECODER: _flipped(f[DECODER], 4)}, False,
                                                    r"decoder\.tflite \(from memory\) is not a valid \.tflite graph", True),
    "a flipped byte of the embedded manifest, unverified": (
        lambda f: {ENCODER: f[ENCODER].replace(b'"start_skip_frames": 1,', b'"start_skip_frames": 3,')}, False,
        r"manifest\.json \(from memory\) says encoder\.start_skip_frames 1, encoder\.tflite \(from memory\) embeds 3", True),
    "swapped encoder and decoder": (lambda f: {ENCODER: f[DECODER], DECODER: f[ENCODER]}, True,
                                    r"encoder\.tflite \(from memory\) is \d+ bytes, the manifest says \d+", False),
    "a manifest that is not JSON": (lambda f: {MANIFEST: f[MANIFEST][:-40]}, True,
                                    r"manifest\.json \(from memory\): manifest is not valid JSON", True),
    "an edited start skip": (lambda f: {MANIFEST: _edited(f, lambda m: m["encoder"].update(start_skip_frames=2))}, True,
                             r"manifest\.json \(from memory\) says encoder\.start_skip_frames 2, encoder\.tflite "
                             r"\(from memory\) embeds 1", True),
    "a manifest field out of range": (lambda f: {MANIFEST: _edited(f, lambda m: m.update(windows=[0]))}, True,
                                      r"manifest\.json \(from memory\): manifest field windows must be", True),
    "a manifest too large to be one": (lambda f: {MANIFEST: b" " * (2 << 20)}, True,
                                       r"manifest\.json \(from memory\) is 2097152 bytes: too large", True),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_model_in_memory_is_refused_in_one_line_as_its_directory_is(tmp_path, damage):
    change, verify, message, same_message = DAMAGES[damage]
    files = _files(DEMO_MODEL_DIR)
    files |= change(files)
    directory = tmp_path / "model"
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    with pytest.raises(ModelDirError) as from_directory:
        Codec.load(directory, threads=1, verify=verify)
    with pytest.raises(ModelDirError, match=rf"^{message}") as from_memory:
        _from_bytes(files, threads=1, verify=verify)
    assert "\n" not in str(from_memory.value)
    if same_message:  # the same words, but the source: a path there, "(from memory)" here
        assert (str(from_directory.value).replace(f"{directory}/", "").replace(f"{directory}: ", "")
                == str(from_memory.value).replace(" (from memory)", ""))


def test_a_model_from_bytes_needs_the_bytes_of_a_graph_and_refuses_what_is_not_bytes():
    files = _files(DEMO_MODEL_DIR)
    with pytest.raises(ConfigError, match="needs the bytes of encoder.tflite, decoder.tflite or both"):
        Codec.from_bytes(files[MANIFEST])
    with pytest.raises(ConfigError, match="encoder.tflite: expected its contents as bytes, got str"):
        Codec.from_bytes(files[MANIFEST], encoder=str(DEMO_MODEL_DIR / ENCODER))
    with pytest.raises(ConfigError, match="manifest.json: expected its contents as bytes, got PosixPath"):
        Codec.from_bytes(DEMO_MODEL_DIR / MANIFEST, decoder=files[DECODER])


def test_a_codec_from_bytes_loads_the_sides_given_and_names_the_missing_one():
    files = _files(DEMO_MODEL_DIR)
    player = Codec.from_bytes(files[MANIFEST], decoder=files[DECODER], threads=1)
    assert player.sides == ("decoder",)
    z = np.random.default_rng(0).normal(0, 1, (player.latent_dim, 3)).astype(np.float32)
    np.testing.assert_array_equal(player.decode(z), Codec.load(DEMO_MODEL_DIR, threads=1, sides=("decoder",)).decode(z))
    with pytest.raises(StreamError, match=r"without its encoder \(Codec.from_bytes\(\.\.\., encoder=\.\.\.\)\)"):
        player.stream_encoder()


def test_a_bytearray_is_copied_so_changing_it_after_loading_changes_nothing():
    files = _files(DEMO_MODEL_DIR)
    expected = Codec.load(DEMO_MODEL_DIR, threads=1, sides=("decoder",))
    buffer = bytearray(files[DECODER])
    codec = Codec.from_bytes(memoryview(files[MANIFEST]), decoder=buffer, threads=1)
    buffer[:] = bytes(len(buffer))
    z = np.random.default_rng(1).normal(0, 1, (codec.latent_dim, 2)).astype(np.float32)
    np.testing.assert_array_equal(codec.decode(z), expected.decode(z))


def test_a_codec_from_bytes_packs_its_weights_into_the_files_its_directory_load_uses(tmp_path):
    files = _files(DEMO_MODEL_DIR)
    expected = _outputs(Codec.load(DEMO_MODEL_DIR, threads=2, weight_cache_dir=tmp_path))
    cached = sorted(p.name for p in tmp_path.iterdir())
    for got, want in zip(_outputs(_from_bytes(files, threads=2, weight_cache_dir=tmp_path)), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert sorted(p.name for p in tmp_path.iterdir()) == cached and len(cached) == 2
    with pytest.raises(ConfigError, match="weight_cache_dir is not a directory"):
        _from_bytes(files, weight_cache_dir=tmp_path / "missing")


def test_a_codec_from_bytes_has_no_directory_and_what_looks_there_does_without(tmp_path):
    """The demo falls back to the bundled clip and no held-out report; a foreign latent file's
    refusal names the model without a path."""
    from same_edge import decode_file
    from same_edge.demo import run_demo

    codec = _from_bytes(_files(DEMO_MODEL_DIR), threads=2)
    result = run_demo(codec, tmp_path)
    assert result.clip == DEMO_MODEL_DIR / "clip.flac" and result.heldout is None and result.reconstruction.is_file()
    latents = np.zeros((codec.latent_dim, 2), np.float32)
    LatentFile(latents, LatentHeader(codec.sample_rate, codec.hop + 1, "0123456789abcdef-0123456789abcdef",
                                     codec.sample_rate)).save(tmp_path / "other.npz")
    with pytest.raises(LatentFileError, match=r"another model .*; the model \(loaded from memory\) is "):
        decode_file(codec, tmp_path / "other.npz", tmp_path / "out.wav")


def test_a_codec_from_bytes_runs_after_its_caller_drops_the_bytes():
    """LiteRT runs the bytes in place: the Graph keeps them alive, however the caller got them."""
    import gc

    files = _files(DEMO_MODEL_DIR)
    expected = _outputs(Codec.load(DEMO_MODEL_DIR, threads=1))
    codec = Codec.from_bytes(files.pop(MANIFEST), bytes(files.pop(ENCODER)), bytearray(files.pop(DECODER)), threads=1)
    gc.collect()
    for got, want in zip(_outputs(codec), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_model_directory_copied_into_memory_loads_alike_from_a_zip(tmp_path):
    """The use the method is for: a model shipped inside an archive, never unpacked to disk."""
    import zipfile

    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name in (MANIFEST, ENCODER):
            z.write(DEMO_MODEL_DIR / name, f"model/{name}")
    with zipfile.ZipFile(archive) as z:
        codec = Codec.from_bytes(z.read(f"model/{MANIFEST}"), z.read(f"model/{ENCODER}"), threads=1)
    audio = np.random.default_rng(2).normal(0, 0.1, (2, 20_000)).astype(np.float32)
    np.testing.assert_array_equal(codec.encode(audio),
                                  Codec.load(DEMO_MODEL_DIR, threads=1, sides=("encoder",)).encode(audio))
