"""PNG plots of a ``benchmarks/run.py`` report (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _speed(report: dict, out: Path) -> None:
    rows = report["speed"]["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, side in zip(axes, ("encode", "decode"), strict=True):
        for offset, threads in ((-0.2, 1), (0.2, 2)):
            rs = [r for r in rows if r["threads"] == threads]
            labels = ["eager" if r["runtime"] == "PyTorch eager" else r["precision"] for r in rs]
            x = range(len(rs))
            ax.bar([i + offset for i in x], [r[f"{side}_x_realtime"] for r in rs], width=0.4, label=f"{threads} thread(s)",
                   yerr=[r[f"{side}_x_realtime"] * r[f"{side}_spread"] / r[f"{side}_s"] / 2 for r in rs], capsize=2)
            ax.set_xticks(list(x), labels)
        ax.set_title(f"SAME-S {side}")
        ax.set_ylabel("x real time")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=110)
    plt.close(fig)


def _streaming(report: dict, out: Path) -> None:
    rows = report["streaming"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = range(len(rows))
    for offset, side in ((-0.2, "encoder"), (0.2, "decoder")):
        ax.bar([i + offset for i in x], [100 * r[f"{side}_p99_ms"] / r["hop_ms"] for r in rows], width=0.4, label=f"{side} p99")
    ax.axhline(25, color="k", linestyle="--", linewidth=1, label="target 25%")
    ax.set_xticks(list(x), [r["precision"] for r in rows])
    ax.set_ylabel("% of the hop (92.9 ms)")
    ax.set_title("SAME-S streaming, smallest window, 2 threads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "streaming.png", dpi=110)
    plt.close(fig)


def _memory(report: dict, out: Path) -> None:
    mem = report["memory"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    minutes = [r["minutes"] for r in mem["rows"]]
    for side in ("encode", "decode"):
        ax.plot(minutes, [r[f"{side}_peak_mb"] for r in mem["rows"]], marker="o", label=side)
    ax.axhline(mem["graphs_mb"] + 200, color="k", linestyle="--", linewidth=1, label="graphs + 200 MB")
    ax.set_xscale("log")
    ax.set_xlabel("input minutes")
    ax.set_ylabel("peak RSS MB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"SAME-S {mem['precision']} file to file")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=110)
    plt.close(fig)


def _fidelity(report: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, rows in report["fidelity"].items():
        rows = [r for r in rows if r["precision"] != "fp32"]
        ax.plot([r["precision"] for r in rows], [r["audio_snr_db"] for r in rows], marker="o", label=name.split(",")[0])
    ax.axhline(30, color="k", linestyle="--", linewidth=1, label="30 dB")
    ax.set_ylabel("decoded SNR vs fp32, dB")
    ax.set_title("Fidelity per precision")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fidelity.png", dpi=110)
    plt.close(fig)


def _peers(report: dict, out: Path) -> None:
    """Speed against fidelity, a point per runtime and precision: the trade the peers stage is for."""
    peers = report["peers"]
    threads = max(r["threads"] for r in peers["rows"])
    rows = [r for r in peers["rows"] if r["threads"] == threads and r["runtime"] != "PyTorch eager"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, side in zip(axes, ("encode", "decode"), strict=True):
        for r in rows:
            snr = min(r[f"{side}_snr_db"], 130.0)  # fp32 rows agree with PyTorch to ~120 dB
            ax.scatter(snr, r[f"{side}_x_realtime"], marker="o" if r["runtime"].startswith("same-edge") else "s")
            ax.annotate(f"{r['runtime'].removeprefix('same-edge ')} {r['precision']}", (snr, r[f"{side}_x_realtime"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("SNR vs PyTorch fp32, dB (higher is more faithful)")
        ax.set_title(f"SAME-S {side}, {peers['window_seconds']:.2f} s windows, {threads} threads")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("x real time")
    fig.tight_layout()
    fig.savefig(out / "peers.png", dpi=110)
    plt.close(fig)


def plot_all(report: dict, out: Path) -> None:
    """Write speed.png, streaming.png, memory.png, fidelity.png and, with the peers stage, peers.png
    into ``out``."""
    for plot in (_speed, _streaming, _memory, _fidelity):
        plot(report, out)
    if report.get("peers"):
        _peers(report, out)
