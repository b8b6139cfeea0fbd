"""Strict loading of official checkpoints: every layout accepted, every mismatch named."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import SAME_S_CONFIG, TINY_CHECKPOINT, TINY_CONFIG
from same_edge_export import CheckpointError, ConfigError, load_config, load_model
from same_edge_export.checkpoint import official_state_dict


def _save(tensors, path):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def official():
    return load_file(str(TINY_CHECKPOINT))


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], rtol=1e-6, atol=1e-7) for k in sa)


def test_full_stable_audio_3_checkpoint_loads_from_pretransform_prefix(tmp_path, official, tiny_model):
    nested = {f"pretransform.model.{k}": v for k, v in official.items()}
    nested["model.transformer.layers.0.weight"] = torch.zeros(3)  # DiT tensors are ignored
    model = load_model(TINY_CONFIG, _save(nested, tmp_path / "sa3.safetensors"))
    assert _same_weights(model, tiny_model)


def test_full_stable_audio_3_config_layout_is_accepted(tmp_path):
    raw = json.loads(TINY_CONFIG.read_text())
    full = {"model_type": "diffusion_cond", "sample_rate": 44100,
            "model": {"pretransform": {"type": "autoencoder", "config": raw["model"]}}}
    (tmp_path / "config.json").write_text(json.dumps(full))
    assert load_config(tmp_path / "config.json") == load_config(TINY_CONFIG)


def test_parametrizations_weight_norm_naming_loads(tmp_path, official, tiny_model):
    renamed = {}
    for k, v in official.items():
        k = k.replace("mapping.weight_g", "mapping.parametrizations.weight.original0")
        k = k.replace("mapping.weight_v", "mapping.parametrizations.weight.original1")
        renamed[k] = v
    assert _same_weights(load_model(TINY_CONFIG, _save(renamed, tmp_path / "p.safetensors")), tiny_model)


def test_saved_official_layout_round_trips(tmp_path, tiny_model):
    path = _save(official_state_dict(tiny_model), tmp_path / "rt.safetensors")
    assert _same_weights(load_model(TINY_CONFIG, path), tiny_model)


def test_pickled_state_dict_loads_weights_only(tmp_path, official, tiny_model):
    torch.save({"state_dict": official}, tmp_path / "model.ckpt")
    assert _same_weights(load_model(TINY_CONFIG, tmp_path / "model.ckpt"), tiny_model)


def test_missing_tensor_is_named(tmp_path, official):
    key = "decoder.layers.3.transformers.1.self_attn.to_out.weight"
    broken = {k: v for k, v in official.items() if k != key}
    with pytest.raises(CheckpointError, match=f"missing tensor {key}"):
        load_model(TINY_CONFIG, _save(broken, tmp_path / "m.safetensors"))


def test_unexpected_tensor_is_named(tmp_path, official):
    extra = dict(official, **{"encoder.layers.0.transformers.0.surprise.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="unexpected tensor encoder.layers.0.transformers.0.surprise.weight"):
        load_model(TINY_CONFIG, _save(extra, tmp_path / "u.safetensors"))


def test_misshaped_tensor_is_named(tmp_path, official):
    key = "encoder.layers.2.weight"
    bad = dict(official, **{key: torch.zeros(9, 32)})
    with pytest.raises(CheckpointError, match=rf"{key} has shape \[9, 32\]"):
        load_model(TINY_CONFIG, _save(bad, tmp_path / "s.safetensors"))


def test_wrong_rope_frequencies_are_refused(tmp_path, official):
    key = "encoder.layers.0.transformers.0.rope.inv_freq"
    bad = dict(official, **{key: official[key] * 2})
    with pytest.raises(CheckpointError, match="rope.inv_freq"):
        load_model(TINY_CONFIG, _save(bad, tmp_path / "r.safetensors"))


def test_config_that_does_not_match_the_weights_is_refused():
    with pytest.raises(CheckpointError, match="does not match the config"):
        load_model(SAME_S_CONFIG, TINY_CHECKPOINT)


def test_truncated_safetensors_is_refused(tmp_path):
    data = TINY_CHECKPOINT.read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(TINY_CONFIG, tmp_path / "t.safetensors")


def test_non_safetensors_file_is_refused(tmp_path):
    (tmp_path / "x.safetensors").write_text("this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(TINY_CONFIG, tmp_path / "x.safetensors")


def test_non_tensor_pickle_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_model(TINY_CONFIG, tmp_path / "x.pt")


def test_malformed_config_is_a_clear_error(tmp_path):
    (tmp_path / "c.json").write_text('{"model": {}}')
    with pytest.raises(ConfigError, match="malformed"):
        load_config(tmp_path / "c.json")
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "d.json")


@pytest.mark.parametrize("key", ["stray.weight", "encoder.extra", "encoder.layers.1.weight", "decoder.layers.3.stray",
                                 "bottleneck.extra", "encoder.layers.0.mapping.weight_x"])
def test_a_stray_top_level_tensor_outside_any_block_is_refused_and_named(tmp_path, official, key):
    extra = dict(official, **{key: torch.zeros(2)})
    with pytest.raises(CheckpointError, match=f"unexpected tensor {re.escape(key)}"):
        load_model(TINY_CONFIG, _save(extra, tmp_path / "stray.safetensors"))


def test_a_stray_tensor_inside_the_autoencoder_of_a_full_stable_audio_3_checkpoint_is_refused(tmp_path, official):
    nested = {f"pretransform.model.{k}": v for k, v in official.items()}
    nested["pretransform.model.stray.weight"] = torch.zeros(2)
    nested["model.transformer.layers.0.weight"] = torch.zeros(3)  # DiT tensors are not the autoencoder's: ignored
    with pytest.raises(CheckpointError, match=r"unexpected tensor stray\.weight"):
        load_model(TINY_CONFIG, _save(nested, tmp_path / "sa3.safetensors"))
