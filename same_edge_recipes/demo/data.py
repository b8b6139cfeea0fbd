"""The demo recipe's music: Debian packages fetched with ``apt-get download``, decoded once to int16
caches at 44.1 kHz.

Training: the Planet Blupi soundtrack (``planetblupi-music-ogg``, 10 tracks, 2.7 h, GPL-3+), the
music of three more games, by eight other composers (``extremetuxracer-data``, ``xmoto-data``,
``lincity-ng-data``: 20 tracks, 30 min, GPL-2+), the Nexuiz electronic soundtrack
(``nexuiz-music``, 18 tracks, 1.4 h, GPL-2+) and the Warzone 2100 soundtracks
(``warzone2100-music``, 29 tracks, 4 h, CC-BY-SA-3.0+ / GPL-2+). Held out for evaluation: the
Frozen Bubble music (``frozen-bubble-data``, 2 tracks, 8.4 min, GPL-2+), another composer.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from same_edge.models import DEMO_MODEL_DIR

DATA_PACKAGES = {  # split -> (Debian package, music files in it; "archive!members" reaches into a zip)
    "train": (("planetblupi-music-ogg", "usr/share/planetblupi/music/*.ogg"),
              ("extremetuxracer-data", "usr/share/games/etr/music/*.ogg"),
              ("xmoto-data", "usr/share/games/xmoto/Textures/Musics/*.ogg"),
              ("lincity-ng-data", "usr/share/games/lincity-ng/music/default/*.ogg"),
              ("nexuiz-music", "usr/share/games/nexuiz/data/music.pk3!sound/cdtracks/*.ogg"),
              ("warzone2100-music", "usr/share/games/warzone2100/music/albums/*/*.opus")),
    "heldout": (("frozen-bubble-data", "usr/share/games/frozen-bubble/snd/frozen-mainzik-*.ogg"),),
}
DEMO_CONFIG = DEMO_MODEL_DIR / "model_config.json"
SAMPLE_RATE = int(json.loads(DEMO_CONFIG.read_text())["sample_rate"])  # the caches hold audio at the model's rate


def fetch_sources(split: str, cache: Path) -> dict[str, list[Path]]:
    """Download and unpack the Debian packages of ``split``; return each package's music files."""
    return {package: _fetch_package(package, pattern, cache) for package, pattern in DATA_PACKAGES[split]}


def fetch_tracks(split: str, cache: Path) -> list[Path]:
    """Every music file of ``split``, package by package."""
    return [f for files in fetch_sources(split, cache).values() for f in files]


def _fetch_package(package: str, pattern: str, cache: Path) -> list[Path]:
    archive, _, members = pattern.partition("!")
    root = cache / package
    if not root.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
            if got.returncode != 0:  # a fresh machine has no package lists yet
                subprocess.run(["apt-get", "update"], check=True, capture_output=True)
                subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True)
            deb = next(Path(tmp).glob(f"{package}_*.deb"))
            staging = cache / f".{package}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
            if members:
                unzip_members(staging / archive, members, staging / f"{archive}.d")
            staging.rename(root)
    files = sorted(Path(p) for p in glob.glob(str(root / (f"{archive}.d/{members}" if members else pattern))))
    if not files:
        raise RuntimeError(f"{package} holds no files matching {pattern}")
    return files


def unzip_members(archive: Path, members: str, into: Path) -> None:
    """Extract the members of the zip ``archive`` that match the glob ``members`` into ``into``."""
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            if fnmatch.fnmatch(name, members):
                z.extract(name, into)


def decode_tracks(files: list[Path], out: Path, limit_seconds: float | None = None) -> np.ndarray:
    """Concatenate tracks as int16 [T, 2] at 44.1 kHz into ``out`` (cached); returns a memmap."""
    if not out.exists():
        parts = []
        budget = None if limit_seconds is None else int(limit_seconds * SAMPLE_RATE)
        for f in files:
            x, sr = sf.read(str(f), dtype="float32", always_2d=True)
            if x.shape[1] != 2:
                raise RuntimeError(f"{f}: expected stereo, got {x.shape[1]} channel(s)")
            if sr != SAMPLE_RATE:
                x = soxr.resample(x, sr, SAMPLE_RATE, quality="VHQ")
            if budget is not None:
                x = x[:budget]
            parts.append(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
            if budget is not None:
                budget -= x.shape[0]
                if budget <= 0:
                    break
        data = np.concatenate(parts)
        tmp = out.with_suffix(".tmp.npy")
        np.save(tmp, data)
        tmp.rename(out)
    return np.load(out, mmap_mode="r")
