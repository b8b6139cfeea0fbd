"""The full SAME-S configuration (seeded weights in the official layout) loads, exports and runs.

One fp32 export of the 108M-parameter model with the streaming window only: about two minutes.
"""

import json

import numpy as np
import pytest
import torch

from conftest import SAME_S_CONFIG, rel_err
from same_edge import Codec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def same_s(tmp_path_factory):
    from same_edge_export.checkpoint import load_model
    from same_edge_export.convert import export
    from same_edge_export.random_weights import write_seeded_checkpoint

    root = tmp_path_factory.mktemp("same-s")
    checkpoint = write_seeded_checkpoint(SAME_S_CONFIG, root / "model.safetensors", seed=0)
    model = load_model(SAME_S_CONFIG, checkpoint)
    export(SAME_S_CONFIG, checkpoint, root / "fp32", "fp32", windows=(1,), progress=False)
    return model, root / "fp32"


def test_same_s_graphs_match_the_torch_model(same_s):
    from same_edge_export.music import synth_music

    model, out = same_s
    codec = Codec.load(out, threads=2)
    audio = synth_music(1.5)
    z = codec.encode(audio)
    with torch.no_grad():
        ref_z = model.encode(torch.from_numpy(audio)[None])[0].numpy()[:, : z.shape[1]]
        ref_y = model.decode(torch.from_numpy(ref_z)[None])[0].numpy()[:, : z.shape[1] * 4096]
    y = codec.decode(ref_z)
    assert z.shape == (256, 17) and y.shape == (2, 17 * 4096)
    assert rel_err(ref_z, z) <= 1e-4
    assert rel_err(ref_y, y) <= 1e-4


def test_same_s_manifest_and_fidelity(same_s):
    _, out = same_s
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["latent_dim"] == 256 and manifest["model"]["hop"] == 4096
    assert manifest["encoder"]["state_shape"] == [1, 17, 768]
    assert manifest["decoder"]["context_shape"] == [2, 768]
    assert 200e6 < manifest["encoder"]["bytes"] < 230e6  # ~54M fp32 parameters, stored once
    fidelity = json.loads((out / "fidelity.json").read_text())
    assert fidelity["encoder"]["snr_db"] > 90 and fidelity["decoder"]["snr_db"] > 90
    assert np.isfinite(fidelity["decoder"]["max_abs_error"])
