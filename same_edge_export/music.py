"""A deterministic synthetic music excerpt for fidelity checks when no recording is given.

Not noise and not sines: plucked-string chords and melody (Karplus-Strong), a plucked bass,
and a drum kit (pitched kick, noise snare and hats) over a I-V-vi-IV progression, panned in
stereo. Generated with numpy alone, so it needs no file and no licence.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 44100
_BPM = 112
_PROGRESSION = [(60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60)]  # C G Am F (MIDI)
_MELODY = [72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 76, 72, 69, 67, 69]


def _pluck(rng: np.random.Generator, midi: int, seconds: float, decay: float, sr: int) -> np.ndarray:
    """Karplus-Strong string: a noise burst through a damped delay line of one period."""
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    period = max(2, int(round(sr / freq)))
    n = int(seconds * sr)
    buf = rng.uniform(-1, 1, period)
    out = np.empty(n)
    for start in range(0, n, period):  # one period at a time: the filter is a two-tap average
        seg = buf[: min(period, n - start)]
        out[start : start + len(seg)] = seg
        buf = decay * 0.5 * (buf + np.roll(buf, -1))
    return out * np.exp(-np.arange(n) / (sr * seconds))


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    phase = 2 * np.pi * np.cumsum(50 + 90 * np.exp(-t * 30)) / sr
    return np.sin(phase) * np.exp(-t * 12)


def _noise_hit(rng: np.random.Generator, seconds: float, decay: float, bright: bool, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    x = rng.normal(size=n)
    if bright:
        x = np.diff(x, prepend=0.0)  # first difference: a crude high-pass for hats
    return x * np.exp(-np.arange(n) / sr * decay)


def synth_music(seconds: float = 12.0, seed: int = 0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A stereo music excerpt: [2, round(seconds * sr)] float32 at ``sr`` Hz, peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    out = np.zeros((2, n + sr))
    beat = 60.0 / _BPM
    eighth = beat / 2

    def add(sig: np.ndarray, at: float, gain: float, pan: float) -> None:
        i = int(at * sr)
        if i >= out.shape[1]:
            return
        j = min(i + len(sig), out.shape[1])
        out[0, i:j] += sig[: j - i] * gain * (1 - pan)
        out[1, i:j] += sig[: j - i] * gain * (1 + pan)

    bars = int(np.ceil(seconds / (4 * beat)))
    for bar in range(bars):
        t0 = bar * 4 * beat
        chord = _PROGRESSION[bar % len(_PROGRESSION)]
        for k in range(8):  # arpeggio, left of centre
            note = chord[k % 3] + (12 if k >= 4 else 0)
            add(_pluck(rng, note, 0.8, 0.996, sr), t0 + k * eighth, 0.22, -0.5)
        add(_pluck(rng, chord[0] - 24, 1.6, 0.998, sr), t0, 0.5, 0.0)  # bass on 1 and 3
        add(_pluck(rng, chord[0] - 24, 1.2, 0.998, sr), t0 + 2 * beat, 0.45, 0.0)
        for k in range(4):  # melody, right of centre
            add(_pluck(rng, _MELODY[(4 * bar + k) % len(_MELODY)], 0.9, 0.997, sr), t0 + k * beat, 0.3, 0.45)
        for k in range(4):
            add(_kick(sr), t0 + k * beat, 0.6 if k % 2 == 0 else 0.35, 0.0)
            if k % 2 == 1:
                add(_noise_hit(rng, 0.2, 25, False, sr), t0 + k * beat, 0.25, 0.1)
        for k in range(8):
            add(_noise_hit(rng, 0.05, 80, True, sr), t0 + k * eighth, 0.08, 0.3)
    out = out[:, :n]
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


if __name__ == "__main__":  # python -m same_edge_export.music OUT.wav [SECONDS]
    import sys

    import soundfile as sf

    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 12.0
    sf.write(sys.argv[1], synth_music(seconds).T, SAMPLE_RATE, subtype="FLOAT")
