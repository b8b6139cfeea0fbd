"""The demo model's training recipe: its data preparation and one training step, on a small slice."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from same_edge_export.checkpoint import load_model
from same_edge_export.config import load_config
from same_edge_export.model import SameAutoencoder
from same_edge_recipes.demo.data import DEMO_CONFIG, unzip_members
from same_edge_recipes.demo.train import (
    Crops,
    init_for_training,
    reconstruction_loss,
    softnorm_regulariser,
    train,
)

RECIPE_DATA = Path(__file__).parent / "data" / "recipe"  # two short tracks: 44.1 kHz FLAC and 48 kHz Ogg


def _one_step_writes_a_loadable_checkpoint(tmp_path, cached_name, seconds, **kwargs):
    out = tmp_path / "run"
    ckpt = train(out, minutes=5, max_steps=1, batch=2, limit_seconds=20, cache=tmp_path / "data", **kwargs)
    cached = np.load(tmp_path / "data" / f"{cached_name}.npy", mmap_mode="r")
    assert cached.dtype == np.int16 and cached.shape[1] == 2 and abs(cached.shape[0] - seconds * 44100) < 0.05 * 44100
    model = load_model(out / "model_config.json", ckpt)  # the official layout, strictly
    assert sum(p.numel() * 4 for p in model.parameters()) <= 25e6  # at most 25 MB of fp32 weights
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == 1 and np.isfinite(log["log"][0]["total"])


def test_data_preparation_and_one_training_step_write_a_loadable_checkpoint(tmp_path):
    sources = {"fixture": sorted(RECIPE_DATA.iterdir())}
    _one_step_writes_a_loadable_checkpoint(tmp_path, "fixture", 6.0, sources=sources)


@pytest.mark.network
def test_the_recipe_fetches_its_held_out_music_from_debian_and_trains_on_it(tmp_path):
    _one_step_writes_a_loadable_checkpoint(tmp_path, "frozen-bubble-data", 20.0, split="heldout")


def test_losses_are_zero_for_a_perfect_reconstruction_and_positive_otherwise():
    x = Crops(np.random.default_rng(0).integers(-3000, 3000, (50000, 2)).astype(np.int16), 8192, 0).batch(2)
    perfect = reconstruction_loss(x, x.clone())
    assert all(float(v) < 1e-5 for v in perfect.values())
    assert all(float(v) > 0 for v in reconstruction_loss(x, 0.5 * x).values())
    z = torch.randn(2, 256, 32)
    assert float(softnorm_regulariser(z)) < float(softnorm_regulariser(3 * z + 1))


def test_crops_draw_from_every_source_equally_whatever_its_length():
    long = np.full((400_000, 2), 1000, np.int16)
    short = np.full((20_000, 2), -1000, np.int16)
    crops = Crops([long, short], 8192, seed=0).batch(400)
    from_short = float((crops[:, 0, 0] < 0).float().mean())
    assert 0.4 < from_short < 0.6


def test_training_starts_with_identity_blocks_and_a_silent_decoder():
    model = init_for_training(SameAutoencoder(load_config(DEMO_CONFIG)))
    blocks = [b for side in (model.encoder, model.decoder) for b in side.transformer.blocks]
    assert all(not b.attn.out.weight.any() and not b.ff.down.weight.any() for b in blocks)
    with torch.no_grad():
        audio = model.decode(torch.randn(1, 256, 4))
    assert audio.shape == (1, 2, 4 * 4096) and not audio.any()


def test_crops_are_tilted_both_brighter_and_duller():
    noise = np.random.default_rng(0).integers(-3000, 3000, (400_000, 2)).astype(np.int16)
    crops = Crops(noise, 8192, seed=0).batch(64).numpy()
    power = np.abs(np.fft.rfft(crops[:, 0], axis=-1)) ** 2
    tilt_db = 10 * np.log10(power[:, -500:].mean(1) / power[:, 50:300].mean(1))  # ~19-22 kHz over 0.3-1.6 kHz
    assert tilt_db.min() < -6 and tilt_db.max() > 6 and abs(float(np.median(tilt_db))) < 3


def test_per_position_decoder_tokens_start_distinct():
    model = init_for_training(SameAutoencoder(load_config(DEMO_CONFIG)))
    tokens = model.decoder.output_token[0].detach()
    assert tokens.shape == (16, model.decoder.output_token.shape[-1])  # one per patch of a frame
    assert float(torch.cdist(tokens, tokens).add(torch.eye(16)).min()) > 0.1


def test_crops_never_clip_after_the_random_spectral_tilt():
    loud = np.random.default_rng(0).choice(np.array([-32767, 32767], np.int16), size=(100_000, 2))
    crops = Crops(loud, 8192, seed=0).batch(16)
    assert float(crops.abs().max()) <= 1.0
    assert float(crops.abs().max()) > 0.5  # scaled, not silenced


def test_a_step_budget_makes_training_reproducible_however_busy_the_machine(tmp_path):
    runs = []
    for name in ("a", "b"):
        ckpt = train(tmp_path / name, minutes=5, max_steps=3, batch=2, limit_seconds=20, split="heldout",
                     cache=tmp_path / "data")
        runs.append(load_model(tmp_path / name / "model_config.json", ckpt).state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    initial = init_for_training(SameAutoencoder(load_config(DEMO_CONFIG))).state_dict()
    assert not torch.equal(runs[0]["decoder.output_conv.weight"], initial["decoder.output_conv.weight"])  # it trained


def test_music_packed_in_a_zip_is_extracted_by_glob(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "music.pk3", "w") as z:
        for name in ("sound/cdtracks/a.ogg", "sound/cdtracks/b.ogg", "sound/misc/c.ogg", "maps/a.bsp"):
            z.writestr(name, b"x")
    unzip_members(tmp_path / "music.pk3", "sound/cdtracks/*.ogg", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["a.ogg", "b.ogg"]
