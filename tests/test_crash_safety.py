"""Crash safety of the embedding cache: kill -9 mid-run, a stall inside a shard write, two runs at once, bit rot.

Each fault runs the real :func:`vlexplore.encode.embed_images` in a child process
(``python -c``) with the test suite's ``FakeEncoder`` slowed down (a sleep per batch of 2),
and kills it with SIGKILL at a seeded random point. Afterwards the cache must hold only
whole shards (every Parquet file readable, no ``.tmp`` file ever listed), every stored row
must be finite, unit-length and equal to a clean run's, and the next run must resume:
fewer model calls than a full run, same result. Every child has a deadline, so a hang fails
the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, colour_image, noise_bytes

from vlexplore.cache import SHARD_SUFFIX, TMP_SUFFIX, store_for
from vlexplore.encode import FAILURES_SUFFIX, embed_images
from vlexplore.images import scan_folder

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
N_IMAGES = 40  # distinct images; plus 2 that fail to decode
BATCH = 2
DELAY = 0.05  # seconds per batch in the child: ~1 s of embedding
DEADLINE = 90  # seconds any child may live

CHILD = r"""
import os, stat, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from conftest import FakeEncoder
from vlexplore.encode import embed_images
from vlexplore.images import scan_folder

folder, cache, delay, mode = sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6]
collection = scan_folder(folder)  # before fsync is patched: the scan's own index write is not counted
if mode == "stall-in-write":
    # The second shard write stops after half of its temp file is on disk, and hangs there.
    real_fsync, writes = os.fsync, [0]

    def stalling_fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            writes[0] += 1
            if writes[0] == 2:
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
                print("stalled", flush=True)
                time.sleep(600)
        real_fsync(fd)

    os.fsync = stalling_fsync
res = embed_images(collection, FakeEncoder(delay=delay), cache_dir=cache, batch_size=int(sys.argv[7]),
                   num_workers=1, on_progress=lambda done, total: print(f"progress {done} {total}", flush=True))
print(f"done {res.n_computed}", flush=True)
"""


# --------------------------------------------------------------------------- helpers


def spawn(folder: Path, cache: Path, mode: str = "run") -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(TESTS_DIR),
            str(REPO_DIR),
            str(folder),
            str(cache),
            str(DELAY),
            mode,
            str(BATCH),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_DIR,
    )


def wait_for_line(proc: subprocess.Popen, accept, deadline: float) -> str | None:
    """Read the child's output until a line satisfies ``accept``; ``None`` when it ended first."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            return None
        if accept(line.strip()):
            return line.strip()
    proc.kill()
    pytest.fail(f"child {proc.pid} did not reach the expected point within its deadline")


def finish(proc: subprocess.Popen, deadline: float) -> str:
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"child {proc.pid} did not finish within its deadline")
    assert proc.returncode == 0, err[-2000:]
    return out


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def make_folder(root: Path) -> Path:
    for i in range(N_IMAGES):
        colour = ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256)
        path = root / f"class_{i % 4}" / f"img_{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        colour_image(colour, (24, 16), seed=i).save(path, "PNG")
    (root / "class_0" / "truncated.jpg").write_bytes(noise_bytes("JPEG", seed=1)[:900])
    (root / "class_1" / "truncated.png").write_bytes(noise_bytes("PNG", seed=2)[:900])
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("crash") / "images")


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """A clean in-process run: fingerprint → ``{view: row}``, and the collection."""
    collection = scan_folder(folder)
    res = embed_images(
        collection, FakeEncoder(), cache_dir=tmp_path_factory.mktemp("clean"), batch_size=BATCH
    )
    rows = {fp: {v: x[i] for v, x in res.views.items()} for i, fp in enumerate(res.collection.fingerprints)}
    assert len(rows) == N_IMAGES
    assert len(res.collection.skipped) == 2
    return collection, rows


def check_cache(cache: Path, rows: dict) -> int:
    """Every shard whole, every stored row finite, unit-length and equal to the reference; duplicates identical.

    Returns:
        The number of distinct images stored.
    """
    import pyarrow.parquet as pq

    store = store_for(cache, FakeEncoder().model_id)
    names = os.listdir(store.directory) if store.directory.exists() else []
    assert all(n.endswith(SHARD_SUFFIX) or (n.startswith(".") and n.endswith(TMP_SUFFIX)) for n in names), (
        names
    )
    assert all(not p.name.endswith(TMP_SUFFIX) for p in store.shard_paths())
    seen: dict[str, dict] = {}
    for path in store.shard_paths():
        table = pq.read_table(path)  # raises on a partial file
        keys = table.column("key").to_pylist()
        for view in ("image", "joint"):
            x = np.asarray(table.column(view).to_pylist(), dtype=np.float32)
            assert x.shape[0] == len(keys)
            assert np.isfinite(x).all()
            np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
            for key, row in zip(keys, x):
                np.testing.assert_allclose(row, rows[key][view], atol=1e-6)  # also: duplicates agree
                seen.setdefault(key, {})[view] = row
    found, values = store.lookup(list(rows), ["image", "joint"])
    assert found.sum() == len(seen)
    for view in ("image", "joint"):
        assert np.isfinite(values[view]).all()
    return len(seen)


def resume(collection, cache: Path, rows: dict, stored: int) -> FakeEncoder:
    """A fresh run on the damaged cache computes only what is missing and gives the clean result."""
    encoder = FakeEncoder()
    res = embed_images(collection, encoder, cache_dir=cache, batch_size=BATCH)
    assert encoder.n_encoded == N_IMAGES - stored
    assert len(res.collection) == N_IMAGES
    assert len(res.collection.skipped) == 2
    for i, fp in enumerate(res.collection.fingerprints):
        for view, x in res.views.items():
            np.testing.assert_allclose(x[i], rows[fp][view], atol=1e-6)
    return encoder


# --------------------------------------------------------------------------- faults


def test_kill_9_at_random_points_leaves_a_whole_cache_and_the_next_run_resumes(folder, reference, tmp_path):
    collection, rows = reference
    rng = random.Random(20240606)
    n_batches = N_IMAGES // BATCH
    trials = [
        (tmp_path / f"trial{i}", rng.randint(2, n_batches - 4) * BATCH, rng.uniform(0, DELAY))
        for i in range(3)
    ]
    deadline = time.monotonic() + DEADLINE
    procs = [spawn(folder, cache) for cache, _, _ in trials]  # in parallel: each pays the torch import once
    stored: list[int] = []
    killed_at: list[str] = []

    def trial(proc, target, pause):
        line = wait_for_line(
            proc, lambda s: s.startswith("progress") and int(s.split()[1]) >= target, deadline
        )
        assert line is not None, "the child ended before the kill point"
        time.sleep(pause)  # somewhere inside the next batch: decoding, the model, or the shard write
        kill9(proc)
        killed_at.append(line)

    threads = [threading.Thread(target=trial, args=(p, t, s)) for p, (_, t, s) in zip(procs, trials)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert len(killed_at) == 3, "a trial did not reach its kill point"
    for cache, target, _ in trials:
        n = check_cache(cache, rows)
        assert target - BATCH <= n < N_IMAGES  # the batches finished before the kill, maybe one more; not all
        stored.append(n)
        resume(collection, cache, rows, n)
        assert check_cache(cache, rows) == N_IMAGES


def test_a_kill_inside_a_shard_write_leaves_only_a_temp_file_that_is_never_read(folder, reference, tmp_path):
    collection, rows = reference
    cache = tmp_path / "cache"
    deadline = time.monotonic() + DEADLINE
    proc = spawn(folder, cache, mode="stall-in-write")
    try:
        assert wait_for_line(proc, lambda s: s == "stalled", deadline) == "stalled"
        store_dir = store_for(cache, FakeEncoder().model_id).directory
        partial = [p for p in store_dir.iterdir() if p.name.endswith(TMP_SUFFIX)]
        assert len(partial) == 1
        assert partial[0].stat().st_size > 0
        kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert partial[0].exists()  # the half-written shard stays behind as a hidden temp file ...
    stored = check_cache(cache, rows)  # ... and is never read: the finished shard is all there is
    assert stored == BATCH
    resume(collection, cache, rows, stored)


def test_two_runs_at_once_leave_a_consistent_cache(folder, reference, tmp_path):
    collection, rows = reference
    cache = tmp_path / "cache"
    deadline = time.monotonic() + DEADLINE
    procs = [spawn(folder, cache), spawn(folder, cache)]
    try:
        outs = [finish(p, deadline) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    computed = [int(o.strip().splitlines()[-1].split()[1]) for o in outs]
    assert all(0 <= c <= N_IMAGES for c in computed)
    assert sum(computed) >= N_IMAGES
    assert check_cache(cache, rows) == N_IMAGES  # every key present; any duplicates identical
    failures = store_for(cache, FakeEncoder().model_id + FAILURES_SUFFIX)
    found, values = failures.lookup(collection.fingerprints, ["error"])
    assert found.sum() == 2
    assert set(values["error"]) == {"truncated file"}
    again = resume(collection, cache, rows, N_IMAGES)
    assert again.n_preprocessed == 0  # neither images nor remembered failures are decoded again


def test_bit_rot_in_a_finished_shard_is_recomputed_not_returned(folder, reference, tmp_path):
    collection, rows = reference
    cache = tmp_path / "cache"
    embed_images(collection, FakeEncoder(), cache_dir=cache, batch_size=N_IMAGES)  # one shard
    (shard,) = store_for(cache, FakeEncoder().model_id).shard_paths()
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(shard).metadata.row_group(0)
    image = next(
        meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema.startswith("image")
    )
    raw = bytearray(shard.read_bytes())
    at = image.data_page_offset + image.total_compressed_size // 2
    raw[at : at + 16] = b"\xff" * 16  # in the middle of the image vectors: NaN where floats were
    shard.write_bytes(bytes(raw))
    encoder = FakeEncoder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = embed_images(collection, encoder, cache_dir=cache, batch_size=BATCH)
    assert any("damaged" in str(w.message) for w in caught)
    assert 0 < encoder.n_encoded < N_IMAGES
    for i, fp in enumerate(res.collection.fingerprints):
        for view, x in res.views.items():
            np.testing.assert_allclose(x[i], rows[fp][view], atol=1e-6)


def test_a_truncated_shard_is_ignored_and_its_rows_recomputed(folder, reference, tmp_path):
    collection, rows = reference
    cache = tmp_path / "cache"
    embed_images(collection, FakeEncoder(), cache_dir=cache, batch_size=10)
    shards = store_for(cache, FakeEncoder().model_id).shard_paths()
    shards[1].write_bytes(shards[1].read_bytes()[:-100])  # e.g. a copy interrupted by a full disk
    with pytest.warns(UserWarning, match="cache shard .* is damaged"):
        encoder = resume(collection, cache, rows, N_IMAGES - 10)
    assert encoder.n_encoded == 10
