"""``encode-dataset --ray``: the same job as Ray actors, on a private local instance and on a simulated
two-node cluster (``ray.cluster_utils.Cluster``): outputs byte-identical to local mode, the same
failure reports and resume, and a node lost mid-job loses nothing."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import ray
import soundfile as sf
from ray.cluster_utils import Cluster

import dataset_faults
from dataset_faults import Faults
from same_edge.dataset import INDEX, LOCK, MARKER, DatasetOptions, encode_dataset

SR = 44100
NODE_ARGS = {"num_cpus": 1, "object_store_memory": 80 << 20, "include_dashboard": False}


@pytest.fixture(scope="module")
def model(export_dir) -> Path:
    return export_dir("fp32")


def _library(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"disc{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        x = (0.2 * rng.standard_normal((int(SR * (0.4 + 0.1 * i)), 2))).astype(np.float32)
        sf.write(d / f"track{i}.flac", x, SR)
        if i % 3 == 0:
            (d / f"track{i}.txt").write_text(f"track {i}")
    (root / "disc0" / "broken.wav").write_bytes(b"RIFF....WAVE not really")


def _outputs(out: Path) -> dict[str, bytes]:
    """Every output a loader reads (hidden bookkeeping, the summary's timings and failure times aside)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name not in ("summary.json", "failures.jsonl")}


def _failures(out: Path) -> list[tuple[str, str]]:
    return sorted((f["relpath"], f["reason"]) for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines()))


def _npz_members(out: Path) -> dict[str, dict[str, bytes]]:
    """A same-edge latent file's members (the zip's own timestamps differ from run to run)."""
    result = {}
    for p in sorted(out.rglob("*.npz")):
        with zipfile.ZipFile(p) as z:
            result[p.relative_to(out).as_posix()] = {n: z.read(n) for n in z.namelist()}
    return result


SA3 = {"format": "sa3", "sample_size": 8 * 4096, "uncaptioned": "empty"}


@pytest.mark.slow
def test_a_local_ray_instance_writes_what_local_mode_writes_with_the_same_failures_and_resume(tmp_path, model):
    _library(tmp_path / "in", 5)
    common = {"model": model, "workers": 2, "threads": 1, "progress": False}
    local = encode_dataset(tmp_path / "in", tmp_path / "local", DatasetOptions(**common, **SA3))
    on_ray = encode_dataset(tmp_path / "in", tmp_path / "ray", DatasetOptions(ray="local", **common, **SA3))
    assert not ray.is_initialized()  # the private instance is shut down with the job
    assert (on_ray.mode, on_ray.nodes, on_ray.workers) == ("ray", 1, 2)
    assert (local.files, local.encoded, local.failed) == (on_ray.files, on_ray.encoded, on_ray.failed) == (6, 5, 1)
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "local")  # byte for byte: .npy, .json, silence, filelist
    assert _failures(tmp_path / "ray") == _failures(tmp_path / "local")
    again = encode_dataset(tmp_path / "in", tmp_path / "ray", DatasetOptions(ray="local", **common, **SA3))
    assert (again.encoded, again.skipped, again.failed) == (0, 5, 1)

    encode_dataset(tmp_path / "in", tmp_path / "local-npz", DatasetOptions(**common))
    encode_dataset(tmp_path / "in", tmp_path / "ray-npz", DatasetOptions(ray="local", **common))
    assert _npz_members(tmp_path / "ray-npz") == _npz_members(tmp_path / "local-npz") != {}


@pytest.fixture(scope="module")
def cluster():
    # Actors on the cluster's nodes do not have the tests' sys.path: the faults travel by value.
    ray.cloudpickle.register_pickle_by_value(dataset_faults)
    c = Cluster(initialize_head=True, head_node_args=NODE_ARGS)
    worker = c.add_node(**NODE_ARGS)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level="warning")
    yield c, worker
    ray.shutdown()
    c.shutdown()


def test_a_two_node_cluster_writes_byte_identical_outputs_to_local_mode(tmp_path, model, cluster):
    c, _ = cluster
    _library(tmp_path / "in", 6)
    common = {"model": model, "threads": 1, "progress": False, **SA3}
    encode_dataset(tmp_path / "in", tmp_path / "local", DatasetOptions(workers=2, **common))
    # No actor starts work before both nodes have one (else the first could finish this small job alone).
    faults = Faults(barrier_nodes=2, once_dir=str(tmp_path))
    s = encode_dataset(tmp_path / "in", tmp_path / "cluster",
                       DatasetOptions(ray=c.address, encoder=faults.encoder(), **common))  # one actor per CPU
    assert (s.mode, s.workers, s.nodes, s.encoded, s.failed) == ("ray", 2, 2, 6, 1)
    assert _outputs(tmp_path / "cluster") == _outputs(tmp_path / "local")
    assert _failures(tmp_path / "cluster") == _failures(tmp_path / "local")


@pytest.mark.slow
def test_losing_a_node_mid_job_loses_nothing(tmp_path, model, cluster):
    c, worker = cluster
    _library(tmp_path / "in", 10)
    common = {"model": model, "threads": 1, "progress": False, **SA3}
    encode_dataset(tmp_path / "in", tmp_path / "local", DatasetOptions(workers=2, **common))
    # Both nodes at work, slowly enough to pull the plug mid-job.
    faults = Faults(slow_s=0.5, barrier_nodes=2, once_dir=str(tmp_path))
    options = DatasetOptions(ray=c.address, workers=2, encoder=faults.encoder(), **common)
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(s=encode_dataset(tmp_path / "in", tmp_path / "cluster", options)))
    job.start()
    index = tmp_path / "cluster" / INDEX
    end = time.monotonic() + 180
    while not (index.is_file() and len(index.read_text().splitlines()) >= 3):  # silence + 2 files done
        assert job.is_alive() and time.monotonic() < end
        time.sleep(0.05)
    c.remove_node(worker, allow_graceful=False)  # the node and its actor are gone, mid-file
    job.join(300)
    assert not job.is_alive()
    s = result["s"]
    assert (s.encoded, s.failed, s.nodes) == (10, 1, 2) and s.worker_restarts >= 1
    assert _outputs(tmp_path / "cluster") == _outputs(tmp_path / "local")
    assert not [p for p in (tmp_path / "cluster").rglob(".*") if p.name not in (MARKER, INDEX, LOCK)]  # temporaries swept
