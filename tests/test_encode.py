"""Embedding through the cache: alignment, resumability, remembered failures, prompts."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from vlexplore import encode, imageio
from vlexplore.cache import store_for
from vlexplore.encode import (
    PROMPT_TEMPLATES,
    default_batch_size,
    embed_images,
    embed_texts,
    encode_prompts,
    parse_prompts,
)
from vlexplore.errors import ConfigError, VlexploreError
from vlexplore.images import scan_folder


@pytest.fixture
def collection(image_folder):
    return scan_folder(image_folder.root)


def _embed(collection, encoder, cache_dir, **kw):
    return embed_images(collection, encoder, cache_dir=cache_dir, batch_size=kw.pop("batch_size", 4), **kw)


# --------------------------------------------------------------------------- embed_images


def test_views_are_aligned_normalised_float32(collection, fake_encoder, cache_dir, image_folder):
    res = _embed(collection, fake_encoder, cache_dir)
    n = len(image_folder.good)
    assert set(res.collection.items["relpath"]) == set(image_folder.good)
    assert res.views["image"].shape == (n, 8)
    assert res.views["joint"].shape == (n, 3)
    for x in res.views.values():
        assert x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    # the joint view is the mean colour: each row must match its own folder's colour
    colour_of = {"red": 0, "green": 1, "blue": 2}
    assert res.views["joint"].argmax(axis=1).tolist() == [colour_of[x] for x in res.collection.labels]
    assert res.model_id == fake_encoder.model_id
    assert res.n_computed == n == fake_encoder.n_encoded


def test_decode_failures_move_to_skipped_with_their_reason(collection, fake_encoder, cache_dir, image_folder):
    res = _embed(collection, fake_encoder, cache_dir)
    reasons = dict(zip(res.collection.skipped["relpath"], res.collection.skipped["reason"]))
    for relpath, fragment in {**image_folder.broken_at_decode, **image_folder.broken_at_scan}.items():
        assert fragment in reasons[relpath], relpath


def test_a_cached_rerun_calls_no_model_and_returns_identical_arrays(collection, make_encoder, cache_dir):
    first = _embed(collection, make_encoder(), cache_dir)
    again = make_encoder()
    second = _embed(collection, again, cache_dir)
    assert again.n_encoded == 0
    assert again.n_preprocessed == 0
    assert second.n_computed == 0
    for view in first.views:
        np.testing.assert_array_equal(first.views[view], second.views[view])
    assert first.collection.items.equals(second.collection.items)
    assert first.collection.skipped.equals(second.collection.skipped)


def test_failures_are_remembered_and_not_decoded_again(collection, fake_encoder, cache_dir, monkeypatch):
    first = _embed(collection, fake_encoder, cache_dir)
    opened = []
    real_open = encode.open_image
    monkeypatch.setattr(encode, "open_image", lambda path, **kw: opened.append(path) or real_open(path, **kw))
    second = _embed(collection, fake_encoder, cache_dir)
    assert opened == []
    assert second.collection.skipped.equals(first.collection.skipped)
    found, values = store_for(cache_dir, fake_encoder.model_id + ":failures").lookup(
        collection.items.set_index("relpath").loc[["red/truncated.jpg"], "fingerprint"], ["error"]
    )
    assert found.all()
    assert values["error"] == ["truncated file"]


def test_an_interrupted_run_keeps_finished_batches_and_resumes(
    collection, make_encoder, cache_dir, image_folder
):
    crashing = make_encoder(fail_after_batches=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _embed(collection, crashing, cache_dir)
    assert crashing.n_encoded == 8  # two batches of 4 done before the crash
    resumed = make_encoder()
    res = _embed(collection, resumed, cache_dir)
    assert resumed.n_encoded == res.n_computed == len(image_folder.good) - 8
    complete = _embed(collection, make_encoder(), cache_dir / "fresh")
    np.testing.assert_array_equal(res.views["image"], complete.views["image"])


def test_io_errors_are_not_remembered(collection, fake_encoder, cache_dir, monkeypatch):
    locked = collection.items.set_index("relpath").loc["red/red_0.jpg", "path"]

    def fake_open(path, *args, **kwargs):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(imageio, "open", fake_open, raising=False)
    assert "red/red_0.jpg" in set(_embed(collection, fake_encoder, cache_dir).collection.skipped["relpath"])
    monkeypatch.delattr(imageio, "open")
    res = _embed(collection, fake_encoder, cache_dir)
    assert res.n_computed == 1
    assert "red/red_0.jpg" in set(res.collection.items["relpath"])


def test_progress_starts_with_the_cached_count_and_ends_at_the_total(collection, make_encoder, cache_dir):
    calls: list[tuple[int, int]] = []
    crashing = make_encoder(fail_after_batches=1)
    with pytest.raises(RuntimeError):
        _embed(collection, crashing, cache_dir)
    _embed(collection, make_encoder(), cache_dir, on_progress=lambda d, t: calls.append((d, t)))
    n = len(collection)
    assert calls[0] == (4, n)  # the batch cached before the crash counts as done from the start
    assert calls[-1] == (n, n)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_batches_have_the_requested_size(collection, fake_encoder, cache_dir, image_folder):
    _embed(collection, fake_encoder, cache_dir, batch_size=5)
    n = len(image_folder.good)
    assert fake_encoder.batch_sizes == [5] * (n // 5) + ([n % 5] if n % 5 else [])
    assert fake_encoder.n_batches == math.ceil(n / 5)


@pytest.mark.parametrize(("device", "expected"), [("cpu", 64), ("cuda", 256), ("cuda:1", 256), ("mps", 64)])
def test_default_batch_size_depends_on_the_device(device, expected):
    assert default_batch_size(device) == expected


def test_batch_size_zero_uses_the_device_default(collection, make_encoder, cache_dir, image_folder):
    enc = make_encoder(device="cuda:0")  # nothing is moved; the fake only reports the device
    embed_images(collection, enc, cache_dir=cache_dir, batch_size=0)
    assert enc.batch_sizes == [len(image_folder.good)]  # fewer images than one default batch


def test_decoding_runs_in_worker_threads(collection, fake_encoder, cache_dir):
    _embed(collection, fake_encoder, cache_dir, num_workers=2)
    assert fake_encoder.preprocess_threads
    assert threading.main_thread().name not in fake_encoder.preprocess_threads


def test_num_workers_zero_decodes_inline_with_the_same_result(collection, make_encoder, cache_dir):
    inline = make_encoder()
    a = _embed(collection, inline, cache_dir / "a", num_workers=0)
    b = _embed(collection, make_encoder(), cache_dir / "b", num_workers=2)
    assert inline.preprocess_threads == {threading.main_thread().name}
    np.testing.assert_array_equal(a.views["image"], b.views["image"])


def test_decoding_runs_at_most_about_one_batch_ahead(collection, make_encoder, cache_dir):
    slow = make_encoder(delay=0.02)
    _embed(collection, slow, cache_dir, batch_size=2, num_workers=2)
    # the current batch (2) + the prefetch window (2) + the batch just handed over
    assert 2 <= slow.max_ahead <= 2 * 2 + 2


def test_identical_files_are_computed_once(tmp_path, write_image, fake_encoder, cache_dir):
    write_image(tmp_path / "a" / "x.png", colour=(200, 0, 0))
    write_image(tmp_path / "b" / "x_copy.png", colour=(200, 0, 0))
    write_image(tmp_path / "b" / "y.png", colour=(0, 0, 200))
    res = _embed(scan_folder(tmp_path), fake_encoder, cache_dir)
    assert fake_encoder.n_encoded == 2
    assert len(res.collection) == 3
    np.testing.assert_array_equal(res.views["image"][0], res.views["image"][1])


def test_an_empty_collection_calls_no_model(tmp_path, fake_encoder, cache_dir):
    res = _embed(scan_folder(tmp_path), fake_encoder, cache_dir)
    assert res.n_computed == 0
    assert fake_encoder.n_batches == 0
    assert {k: v.shape for k, v in res.views.items()} == {"image": (0, 0), "joint": (0, 0)}


def test_a_collection_of_only_broken_images_returns_empty_views(
    tmp_path, fake_encoder, cache_dir, image_folder
):
    solo = tmp_path / "solo"
    (solo / "only").mkdir(parents=True)
    (solo / "only" / "t.jpg").write_bytes((image_folder.root / "red" / "truncated.jpg").read_bytes())
    res = _embed(scan_folder(solo), fake_encoder, cache_dir)
    assert len(res.collection) == 0
    assert res.views["image"].shape == (0, 0)
    assert res.collection.skipped["relpath"].tolist() == ["only/t.jpg"]


def test_another_model_id_does_not_share_the_cache(collection, make_encoder, cache_dir, image_folder):
    _embed(collection, make_encoder(seed=0), cache_dir)
    other = make_encoder(seed=1)
    _embed(collection, other, cache_dir)
    assert other.n_encoded == len(image_folder.good)


def test_an_encoder_returning_wrong_shapes_is_reported(collection, fake_encoder, cache_dir, monkeypatch):
    monkeypatch.setattr(fake_encoder, "encode_image_batch", lambda batch: {"image": np.zeros((1, 8))})
    with pytest.raises(VlexploreError, match="'image' with shape"):
        _embed(collection, fake_encoder, cache_dir)


@pytest.mark.parametrize(
    ("kw", "match"), [({"batch_size": -1}, "batch_size"), ({"num_workers": -1}, "num_workers")]
)
def test_negative_settings_are_refused(collection, fake_encoder, cache_dir, kw, match):
    with pytest.raises(ConfigError, match=match):
        embed_images(collection, fake_encoder, cache_dir=cache_dir, **kw)


# --------------------------------------------------------------------------- texts and prompts


def test_embed_texts_returns_normalised_float32_rows(fake_encoder):
    x = embed_texts(["red", "a blue car", "zebra"], fake_encoder)
    assert x.shape == (3, 3)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-6)


def test_embed_texts_of_nothing_calls_no_model(fake_encoder):
    assert embed_texts([], fake_encoder).shape == (0, 0)
    assert fake_encoder.n_texts == 0


def test_encode_prompts_averages_the_templates_and_renormalises(fake_encoder):
    out = encode_prompts(["red", "blue"], fake_encoder)
    assert fake_encoder.n_texts == 2 * len(PROMPT_TEMPLATES)
    for row, prompt in zip(out, ["red", "blue"]):
        mean = fake_encoder.encode_texts([t.format(prompt) for t in PROMPT_TEMPLATES]).mean(axis=0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), rtol=1e-5)
    assert not np.allclose(out[0], fake_encoder.encode_texts([PROMPT_TEMPLATES[0].format("red")])[0])


def test_prompt_templates_are_clip_style():
    assert len(PROMPT_TEMPLATES) == 6
    assert all("{}" in t for t in PROMPT_TEMPLATES)
    assert PROMPT_TEMPLATES[0] == "a photo of a {}."


@pytest.mark.parametrize(
    ("prompts", "templates", "match"),
    [
        ([], PROMPT_TEMPLATES, "no text prompts"),
        (["dog", "  "], PROMPT_TEMPLATES, "non-empty"),
        (["dog"], ["a photo"], "needs a"),
    ],
    ids=["none", "blank", "template-without-slot"],
)
def test_encode_prompts_refuses_bad_input(fake_encoder, prompts, templates, match):
    with pytest.raises(ConfigError, match=match):
        encode_prompts(prompts, fake_encoder, templates)


def test_parse_prompts_splits_on_commas_and_new_lines():
    assert parse_prompts("dog, cat\nred car,\r\n  ,bird  ") == ["dog", "cat", "red car", "bird"]


def test_parse_prompts_drops_repeats_keeping_the_first():
    assert parse_prompts("Dog, cat, dog, red  car, Red car") == ["Dog", "cat", "red car"]


def test_parse_prompts_of_blank_text_is_empty():
    assert parse_prompts(" , \n ") == []
    assert parse_prompts("") == []


@pytest.mark.parametrize("sizes", [[5], [3, 0, 4, 1], [1] * 7])
def test_gather_equals_concatenate_then_index(sizes):
    from vlexplore.encode import _gather

    rng = np.random.default_rng(len(sizes))
    blocks = [rng.normal(size=(s, 3)).astype(np.float32) for s in sizes]
    whole = np.concatenate(blocks)
    for rows in (np.arange(len(whole)), rng.permutation(len(whole)), rng.integers(0, len(whole), 9)):
        np.testing.assert_array_equal(_gather(list(blocks), rows), whole[rows])


@pytest.mark.parametrize(("free_gb", "expected"), [(0.5, 32), (4, 64), (10, 128), (22, 256), (70, 1024)])
def test_gpu_batch_size_fills_half_the_free_memory(free_gb, expected):
    from vlexplore.encode import default_batch_size

    assert default_batch_size("cuda:0", free_bytes=int(free_gb * 2**30)) == expected
    assert default_batch_size("cpu", free_bytes=int(free_gb * 2**30)) == 64


def test_gpu_batch_size_reads_free_memory_from_torch(monkeypatch):
    import torch

    from vlexplore.encode import default_batch_size

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 2**30, 16 * 2**30))
    assert default_batch_size("cuda") == 128

    def no_gpu(device=None):
        raise RuntimeError("no CUDA driver")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_gpu)
    assert default_batch_size("cuda") == 256
