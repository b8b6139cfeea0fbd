"""Golden outputs of the official stable-audio-3 code for the tiny SAME-L fixture (tests/data/same-l-tiny).

Run once, by hand, against a snapshot of github.com/Stability-AI/stable-audio-3 (a git directory):

    pip install einops
    python tests/official_golden.py SNAPSHOT_GIT_DIR tests/data/same-l-tiny

The official modules are read from the snapshot with ``git show`` and executed in memory: nothing of
the official code is written to this repository. Their inference noise is off (``mask_noise`` 0,
bottleneck ``noise_regularize`` off), attention runs on its eager path (no flex_attention compile,
no flash_attn: fp32 throughout), and the weights come from ``same_weights`` (numpy, official key
layout), not from this project's model, so the fixture checks our loader as well.

Writes ``model_config.json``, ``model.safetensors`` and ``golden.npz``:
  ``audio{i}`` [2, T] float32 -> ``latents{i}`` = official ``encode(audio[None])[0]``, [8, ceil(T / 4096)]
  ``zin{i}`` [8, L] -> ``decoded{i}`` = official ``decode(z[None])[0]``, [2, L * 4096]
  ``commit``: the snapshot's commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import same_weights  # noqa: E402

SEED = 4321
# Lengths (samples): several 8-frame blocks plus an odd tail; one whole frame short of a block; under one frame.
AUDIO_LENGTHS = (12 * 4096 + 1234, 7 * 4096, 3000)
LATENT_LENGTHS = (11, 4, 1)  # odd and over a block, even, a single frame
MODULES = ("utils", "transformer", "blocks", "autoencoders", "bottleneck", "pretransforms")


def official_modules(snapshot: Path) -> dict[str, types.ModuleType]:
    """The official model modules, executed from the snapshot's HEAD (torchaudio stubbed: only its
    resampler is referenced, and nothing here resamples)."""
    def package(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
        return module

    torchaudio = package("torchaudio")
    torchaudio.transforms = types.ModuleType("torchaudio.transforms")
    torchaudio.transforms.Resample = None
    sys.modules["torchaudio.transforms"] = torchaudio.transforms
    for name in ("stable_audio_3", "stable_audio_3.models", "stable_audio_3.inference"):
        package(name)
    audio_utils = types.ModuleType("stable_audio_3.inference.audio_utils")
    audio_utils.prepare_audio = None
    sys.modules["stable_audio_3.inference.audio_utils"] = audio_utils
    loaded = {}
    for name in MODULES:
        path = f"stable_audio_3/models/{name}.py"
        source = subprocess.check_output(["git", "-C", str(snapshot), "show", f"HEAD:{path}"], text=True)
        module = types.ModuleType(f"stable_audio_3.models.{name}")
        module.__package__ = "stable_audio_3.models"
        sys.modules[module.__name__] = module
        exec(compile(source, f"{snapshot}:{path}", "exec"), module.__dict__)
        loaded[name] = module
    loaded["transformer"].flex_attention_available = False  # the eager, fp32 attention path
    return loaded


def official_autoencoder(m: dict[str, types.ModuleType], ae: dict) -> torch.nn.Module:
    """The official AudioAutoencoder for an autoencoder block, built as its factory builds it."""
    a = m["autoencoders"]
    return a.AudioAutoencoder(
        a.SAMEEncoder(**ae["encoder"]["config"]), a.SAMEDecoder(**ae["decoder"]["config"]),
        io_channels=ae["io_channels"], latent_dim=ae["latent_dim"], downsampling_ratio=ae["downsampling_ratio"],
        sample_rate=44100, bottleneck=m["bottleneck"].SoftNormBottleneck(**ae["bottleneck"]["config"]),
        pretransform=m["pretransforms"].PatchedPretransform(**ae["pretransform"]["config"]),
        soft_clip=ae["decoder"].get("soft_clip", False)).eval()


def main(snapshot: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    ae = same_weights.tiny_l()
    weights = same_weights.state_dict(ae, SEED)
    model = official_autoencoder(official_modules(snapshot), ae)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    model.encoder.layers[0].mask_noise = 0.0
    model.decoder.layers[3].mask_noise = 0.0
    model.bottleneck.noise_regularize = False

    rng = np.random.default_rng(SEED)
    golden = {}
    with torch.no_grad():
        for i, t in enumerate(AUDIO_LENGTHS):
            audio = (0.3 * rng.standard_normal((2, t))).astype(np.float32)
            golden[f"audio{i}"] = audio
            golden[f"latents{i}"] = model.encode(torch.from_numpy(audio)[None])[0].numpy()
        for i, n in enumerate(LATENT_LENGTHS):
            z = rng.standard_normal((ae["latent_dim"], n)).astype(np.float32)
            golden[f"zin{i}"] = z
            golden[f"decoded{i}"] = model.decode(torch.from_numpy(z)[None])[0].numpy()
    commit = subprocess.check_output(["git", "-C", str(snapshot), "rev-parse", "HEAD"], text=True).strip()
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_config.json").write_text(json.dumps(same_weights.model_config_json(ae), indent=2) + "\n")
    save_file(weights, str(out / "model.safetensors"))
    np.savez(out / "golden.npz", commit=np.array(commit), **golden)
    for k, v in golden.items():
        print(f"{k:10s} {list(v.shape)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
