"""Finished clusterings stored in the cache (vlexplore.clusterstore) and read back by cluster_embedded."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import vlexplore as vx
from vlexplore import cluster, clusterstore
from vlexplore.pipeline import cluster_embedded, embed, scan
from vlexplore.results import Clustered


@pytest.fixture
def embedded(tmp_path, write_image, fake_encoder, cache_dir, monkeypatch):
    monkeypatch.setattr(clusterstore, "MIN_ROWS", 0)  # every size is stored in these tests
    root = tmp_path / "photos"
    for i, colour in enumerate(((220, 30, 30), (30, 200, 40), (30, 40, 220))):
        for j in range(4):
            write_image(root / f"c{i}" / f"img{j}.png", colour=colour, seed=10 * i + j)
    return embed(scan(root, cache_dir=cache_dir), vx.EncodeConfig(cache_dir=cache_dir), encoder=fake_encoder)


def _no_clustering(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("clustered again instead of reading the stored clustering")

    monkeypatch.setattr(cluster, "cluster_vectors", refuse)


def test_the_same_clustering_is_read_back_instead_of_made_again(embedded, cache_dir, monkeypatch):
    cfg = vx.ClusterConfig(k=3)
    first = cluster_embedded(embedded, cfg, cache_dir=cache_dir)
    assert len(list((cache_dir / clusterstore.FOLDER).glob("*.npz"))) == 1
    _no_clustering(monkeypatch)
    again = cluster_embedded(embedded, cfg, cache_dir=cache_dir)
    assert np.array_equal(again.labels, first.labels)
    assert again.names == first.names
    assert again.keywords == first.keywords
    assert again.metrics == pytest.approx(first.metrics)
    assert again.info == first.info
    assert again.texts == first.texts
    assert again.config == cfg
    assert again.coords.shape == (embedded.n, 2)


def test_other_options_or_captions_make_a_new_clustering(embedded, cache_dir, monkeypatch):
    cluster_embedded(embedded, vx.ClusterConfig(k=3), cache_dir=cache_dir)
    calls: list[int] = []
    real = cluster.cluster_vectors

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster, "cluster_vectors", counting)
    cluster_embedded(embedded, vx.ClusterConfig(k=2), cache_dir=cache_dir)
    recaptioned = replace(embedded, captions=["a new caption"] * embedded.n)
    cluster_embedded(recaptioned, vx.ClusterConfig(k=3), cache_dir=cache_dir)
    assert len(calls) == 2


def test_nothing_is_stored_below_the_size_or_for_text_representations(embedded, cache_dir, monkeypatch):
    assert clusterstore.clustering_key(embedded, vx.ClusterConfig(representation="caption-tfidf")) is None
    assert clusterstore.clustering_key(embedded, vx.ClusterConfig()) is not None
    monkeypatch.setattr(clusterstore, "MIN_ROWS", embedded.n + 1)
    assert clusterstore.clustering_key(embedded, vx.ClusterConfig()) is None


@pytest.mark.parametrize("content", [b"", b"not an npz", b"PK\x03\x04broken"])
def test_a_damaged_file_is_made_again(embedded, cache_dir, content):
    cfg = vx.ClusterConfig(k=3)
    first = cluster_embedded(embedded, cfg, cache_dir=cache_dir)
    (path,) = (cache_dir / clusterstore.FOLDER).glob("*.npz")
    path.write_bytes(content)
    again = cluster_embedded(embedded, cfg, cache_dir=cache_dir)
    assert np.array_equal(again.labels, first.labels)


def test_a_file_that_needs_pickle_is_refused(tmp_path):
    (tmp_path / clusterstore.FOLDER).mkdir()
    np.savez(
        tmp_path / clusterstore.FOLDER / "k.npz", labels=np.zeros(3, int), meta=np.array([{"a": 1}], object)
    )
    assert clusterstore.load(tmp_path, "k", cfg=vx.ClusterConfig(), captions=[""] * 3, n=3) is None


def test_info_keeps_int_keys_arrays_and_nesting(tmp_path):
    info = {
        "naming": {"scores": {0: 0.5, 2: np.float32(0.25)}, "source": "vocabulary"},
        "confident": np.array([True, False, True]),
        "prompt_ranking": [{"prompt": "colour", "loss": np.float64(1.5)}],
        "drifted": [2],
    }
    cl = Clustered(
        labels=np.array([0, 2, 2]),
        names={0: "red", 2: "blue"},
        keywords={0: ["red"], 2: []},
        similarity=np.array([0.9, 0.8, 0.7], np.float32),
        metrics={"acc": 1.0},
        info=info,
    )
    assert clusterstore.save(tmp_path, "k", cl, captions=["a", "b", "c"])
    back = clusterstore.load(tmp_path, "k", cfg=vx.ClusterConfig(), captions=["a", "b", "c"], n=3)
    assert back is not None
    assert back.names == {0: "red", 2: "blue"}
    assert back.info["naming"]["scores"] == {0: 0.5, 2: 0.25}
    assert back.info["confident"].tolist() == [True, False, True]
    assert back.info["prompt_ranking"] == [{"prompt": "colour", "loss": 1.5}]
    assert back.similarity.tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert back.n_clusters == 3
    assert clusterstore.load(tmp_path, "k", cfg=vx.ClusterConfig(), captions=["a"] * 4, n=4) is None


def test_a_cache_that_cannot_be_written_only_costs_speed(embedded, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    coords = np.zeros((embedded.n, 2), np.float32)
    cl = cluster_embedded(embedded, vx.ClusterConfig(k=3), coords=coords, cache_dir=blocked)
    assert cl.n_clusters == 3


def test_only_the_newest_clusterings_are_kept(embedded, cache_dir, monkeypatch):
    monkeypatch.setattr(clusterstore, "KEEP", 2)
    coords = np.zeros((embedded.n, 2), np.float32)
    for k in (2, 3, 4):
        cluster_embedded(embedded, vx.ClusterConfig(k=k), coords=coords, cache_dir=cache_dir)
    kept = list((cache_dir / clusterstore.FOLDER).glob("*.npz"))
    assert len(kept) == 2
    assert clusterstore.clustering_key(embedded, vx.ClusterConfig(k=4)) + ".npz" in {p.name for p in kept}


def test_the_suggested_k_of_a_large_folder_is_remembered(embedded, cache_dir, monkeypatch):
    first = vx.suggest_k_embedded(embedded, seed=0, cache_dir=cache_dir)
    assert first == cluster.suggest_k(embedded.views["image"], seed=0)
    assert len(list((cache_dir / clusterstore.FOLDER).glob("k-*.json"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("suggest_k ran again instead of reading the remembered k")

    monkeypatch.setattr(cluster, "suggest_k", refuse)
    assert vx.suggest_k_embedded(embedded, seed=0, cache_dir=cache_dir) == first
    with pytest.raises(AssertionError, match="ran again"):  # another seed is another question
        vx.suggest_k_embedded(embedded, seed=1, cache_dir=cache_dir)
    with pytest.raises(AssertionError, match="ran again"):  # another model's vectors, another answer
        vx.suggest_k_embedded(replace(embedded, model_id="another model"), seed=0, cache_dir=cache_dir)


def test_a_damaged_remembered_k_is_made_again(embedded, cache_dir):
    k = vx.suggest_k_embedded(embedded, seed=0, cache_dir=cache_dir)
    (path,) = (cache_dir / clusterstore.FOLDER).glob("k-*.json")
    path.write_text('{"k": "many"}')
    assert vx.suggest_k_embedded(embedded, seed=0, cache_dir=cache_dir) == k
    assert path.read_text() == f'{{"k": {k}}}'
