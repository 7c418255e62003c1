"""A tiny open_clip model trained on coloured shapes (``aligned_clip``).

Used through the same public code path a CLIP user runs: the registry's ``load_encoder`` with a local
checkpoint, ``embed_images`` / ``embed_texts`` through the disk cache, prototype clustering. Texts and images
share meaning here, so these tests check semantics (zero-shot, prototypes), not only shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from aligned_model import ARCH, build_model, register_config, sample_shapes, save_model, write_shape_folder

import vlexplore as vx
from vlexplore.encode import embed_texts
from vlexplore.models.registry import load_encoder

HELD_OUT_SEED = 424242  # training used seeds 0 and 1


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """30 unseen images per colour in colour sub-folders (folder name = label)."""
    root = tmp_path_factory.mktemp("held-out-shapes")
    write_shape_folder(root, 30, seed=HELD_OUT_SEED)
    return root


@pytest.fixture(scope="module")
def aligned_encoder(aligned_clip, tmp_path_factory):
    return load_encoder(
        f"openclip:{ARCH}:{aligned_clip.checkpoint}",
        device="cpu",
        cache_dir=tmp_path_factory.mktemp("digests"),
    )


def test_aligned_model_learns_its_training_pairs(aligned_clip):
    # no wall-clock bound here: the machine is shared; training time is printed for the log only
    print(
        f"aligned model: {aligned_clip.steps} steps in {aligned_clip.seconds:.1f}s, loss {aligned_clip.final_loss:.3f}"
    )
    assert aligned_clip.checkpoint.is_file()
    assert (aligned_clip.model_dir / "open_clip_config.json").is_file()
    assert aligned_clip.train_accuracy >= 0.9


def test_zero_shot_colour_of_held_out_images(aligned_encoder, held_out, tmp_path):
    col = vx.scan_folder(held_out)
    res = vx.embed_images(col, aligned_encoder, cache_dir=tmp_path / "cache", num_workers=0)
    texts = embed_texts(["red", "green", "blue"], aligned_encoder)
    pred = np.array(["red", "green", "blue"])[(res.views["joint"] @ texts.T).argmax(axis=1)]
    labels = np.asarray(res.collection.labels)
    acc = float((pred == labels).mean())
    print(f"zero-shot colour accuracy on {len(labels)} held-out images: {acc:.3f}")
    assert len(labels) == 90
    assert acc >= 0.9, f"zero-shot colour accuracy {acc:.3f}"

    phrased = embed_texts(["a red shape", "a green shape", "a blue shape"], aligned_encoder)
    acc2 = float(
        (np.array(["red", "green", "blue"])[(res.views["joint"] @ phrased.T).argmax(1)] == labels).mean()
    )
    assert acc2 >= 0.9, f"zero-shot accuracy with 'a red shape'…: {acc2:.3f}"


def test_zero_shot_shape_is_learnt_too(aligned_encoder, held_out, tmp_path):
    col = vx.scan_folder(held_out)
    res = vx.embed_images(col, aligned_encoder, cache_dir=tmp_path / "cache", num_workers=0)
    shapes = ["circle", "square", "triangle"]
    texts = embed_texts([f"a {s}" for s in shapes], aligned_encoder)
    pred = np.array(shapes)[(res.views["joint"] @ texts.T).argmax(axis=1)]
    truth = np.array([p.split("/")[-1].split("_")[0] for p in res.collection.items["relpath"]])
    acc = float((pred == truth).mean())
    print(f"zero-shot shape accuracy: {acc:.3f}")
    assert acc >= 0.6, f"zero-shot shape accuracy {acc:.3f} (chance 0.33)"


def test_prototype_clustering_through_the_pipeline(aligned_clip, held_out, tmp_path):
    cfg = vx.EncodeConfig(
        model=f"openclip:{ARCH}:{aligned_clip.checkpoint}",
        device="cpu",
        cache_dir=tmp_path / "cache",
        num_workers=0,
    )
    emb = vx.embed(vx.scan_folder(held_out), cfg)
    assert emb.fallback_note is None
    assert emb.model_id.startswith(f"open_clip:{ARCH}:file-")
    cl = vx.cluster_embedded(  # coords given: the 2-d map is not what is tested here (UMAP takes seconds)
        emb,
        vx.ClusterConfig(method="prototypes", prototypes=("red", "green", "blue")),
        coords=np.zeros((emb.n, 2), dtype=np.float32),
        cache_dir=tmp_path / "cache",
    )
    print(f"prototype clustering on held-out images: {cl.metrics}")
    assert cl.metrics["acc"] >= 0.9, cl.metrics
    assert sorted(cl.names.values())[:3] == ["blue", "green", "red"]


def test_hub_style_directory_is_the_same_model(aligned_clip, aligned_encoder):
    by_dir = load_encoder(str(aligned_clip.model_dir), device="cpu")
    by_schema = load_encoder(f"local-dir:{aligned_clip.model_dir}", device="cpu")
    by_file = load_encoder(str(aligned_clip.model_dir / "open_clip_model.safetensors"), device="cpu")
    assert by_dir.model_id == by_schema.model_id == by_file.model_id  # the file with its config beside it
    assert str(aligned_clip.model_dir) not in by_dir.model_id
    assert by_dir.model_id.startswith("open_clip:local-dir:file-")
    probe = ["red", "a blue square"]
    np.testing.assert_allclose(by_dir.encode_texts(probe), aligned_encoder.encode_texts(probe), atol=1e-6)
    x = torch.stack([aligned_encoder.preprocess(im) for im, _, _ in sample_shapes(6, seed=7)])
    np.testing.assert_allclose(
        by_dir.encode_image_batch(x)["image"], aligned_encoder.encode_image_batch(x)["image"], atol=1e-6
    )


def test_random_init_checkpoint_embeds_end_to_end(image_folder, tmp_path):
    register_config(tmp_path / "cfg")
    model, _, _ = build_model(seed=3)
    ckpt, _ = save_model(model, tmp_path / "random", tmp_path / "cfg" / f"{ARCH}.json", name="random.pt")
    enc = load_encoder(f"openclip:{ARCH}:{ckpt}", device="cpu", cache_dir=tmp_path / "cache")
    col = vx.scan_folder(image_folder.root)
    first = vx.embed_images(col, enc, cache_dir=tmp_path / "cache", num_workers=0)
    n = len(image_folder.good)
    assert first.n_computed == n
    assert len(first.collection) == n
    for v in ("image", "joint"):
        a = first.views[v]
        assert a.shape == (n, 64)
        assert a.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    again = vx.embed_images(
        col,
        load_encoder(f"openclip:{ARCH}:{ckpt}", device="cpu"),
        cache_dir=tmp_path / "cache",
        num_workers=0,
    )
    assert again.n_computed == 0
    np.testing.assert_array_equal(again.views["image"], first.views["image"])
