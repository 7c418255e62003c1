"""The Ray engine: same embeddings as the local engine, same cache, resumable; resource planning.

These tests start one local Ray runtime (2 CPUs, no dashboard, usage statistics off) for the module.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from vlexplore.cli import main
from vlexplore.distributed import (
    EncoderRecipe,
    RayUnavailableError,
    embed_images_ray,
    plan_resources,
    ray_module,
    shutdown,
)
from vlexplore.encode import embed_images
from vlexplore.errors import ConfigError
from vlexplore.images import scan_folder
from vlexplore.models.registry import load_encoder

# --------------------------------------------------------------------------- planning (no Ray needed)


def test_plan_one_actor_per_gpu_with_a_share_of_the_cpus():
    plan = plan_resources({"CPU": 32, "GPU": 4})
    assert (plan.actors, plan.gpus_per_actor, plan.device) == (4, 1.0, "cuda")
    assert plan.cpus_per_actor == 7.75  # (32 - 0.5 for the read tasks) / 4, in quarter CPUs
    assert plan.batch_size == 256


def test_plan_cpu_only_and_forced_cpu():
    assert plan_resources({"CPU": 2}).actors == 1
    assert plan_resources({"CPU": 2}).cpus_per_actor == 1.5
    assert plan_resources({"CPU": 16}).actors == 4
    cpu = plan_resources({"CPU": 16, "GPU": 2}, device="cpu")
    assert (cpu.device, cpu.gpus_per_actor, cpu.batch_size) == ("cpu", 0.0, 64)
    assert plan_resources({"CPU": 8, "GPU": 2}, gpus_per_actor=0.5).actors == 4


def test_plan_decode_threads_are_capped():
    assert plan_resources({"CPU": 128, "GPU": 1}).cpus_per_actor == 8


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"device": "cuda"}, "no GPU"),
        ({"actors": 0}, "actors"),
        ({"gpus_per_actor": -1}, "gpus_per_actor"),
        ({"batch_size": -4}, "batch_size"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_plan_refuses_bad_requests(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        plan_resources({"CPU": 4}, **kwargs)


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayUnavailableError, match=r'pip install "ray\[data\]"'):
        ray_module()


def test_cli_without_ray_fails_cleanly(monkeypatch, tmp_path, write_image, capsys):
    write_image(tmp_path / "imgs" / "a.png")
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["embed", str(tmp_path / "imgs"), "--engine", "ray", "--cache-dir", str(tmp_path / "c")])
    assert code == 2
    assert "ray[data]" in capsys.readouterr().err


# --------------------------------------------------------------------------- a local Ray runtime


@pytest.fixture(scope="module")
def ray_runtime():
    ray = ray_module()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2, logging_level="warning")
    yield ray
    shutdown(ray)


@pytest.fixture(scope="module")
def bundled():
    return load_encoder("bundled", device="cpu")


def test_ray_equals_local_and_fills_the_same_cache(ray_runtime, image_folder, tmp_path, bundled):
    col = scan_folder(image_folder.root)
    progress = []
    ray_res = embed_images_ray(
        col,
        "bundled",
        device="cpu",
        cache_dir=tmp_path / "ray",
        on_progress=lambda d, t: progress.append((d, t)),
    )
    local = embed_images(col, bundled, cache_dir=tmp_path / "local", num_workers=0)

    assert ray_res.model_id == local.model_id
    assert ray_res.n_computed == len(image_folder.good)
    assert ray_res.collection.items["relpath"].tolist() == local.collection.items["relpath"].tolist()
    for view, array in local.views.items():
        assert ray_res.views[view].shape == array.shape
        np.testing.assert_allclose(ray_res.views[view], array, atol=1e-5)
    # files that decode on no engine are reported the same way, with their reason
    skipped = dict(zip(ray_res.collection.skipped["relpath"], ray_res.collection.skipped["reason"]))
    for relpath, fragment in image_folder.broken_at_decode.items():
        assert fragment in skipped[relpath]
    assert progress[-1] == (len(col), len(col))

    # the local engine reads the ray run's cache as its own: no model call at all
    class NoModel:
        model_id, views, device = bundled.model_id, bundled.views, "cpu"

        def preprocess(self, image):
            raise AssertionError("the model was called although the ray run cached everything")

    again = embed_images(col, NoModel(), cache_dir=tmp_path / "ray", num_workers=0)
    assert again.n_computed == 0
    np.testing.assert_array_equal(again.views["image"], ray_res.views["image"])


def test_ray_resumes_and_reads_what_local_cached(ray_runtime, image_folder, tmp_path, bundled):
    col = scan_folder(image_folder.root)
    first_half = col.items["relpath"].tolist()[: len(col) // 2]
    part = col.without({r: "later" for r in col.items["relpath"] if r not in first_half})
    local = embed_images(part, bundled, cache_dir=tmp_path / "c", num_workers=0)

    res = embed_images_ray(col, "bundled", device="cpu", cache_dir=tmp_path / "c")
    good_in_first = sum(r in image_folder.good for r in first_half)
    assert local.n_computed == good_in_first
    assert res.n_computed == len(image_folder.good) - good_in_first
    assert embed_images_ray(col, "bundled", device="cpu", cache_dir=tmp_path / "c").n_computed == 0


def test_cli_engine_ray(ray_runtime, tmp_path, write_image, capsys, monkeypatch):
    from vlexplore import encode
    from vlexplore.cache import store_for

    monkeypatch.setattr(encode, "COMPACT_ABOVE", 2)  # a run that leaves more shards compacts them, as locally
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        write_image(tmp_path / "imgs" / f"{i}.png", colour=colour, seed=i)
    (tmp_path / "imgs" / "cut.png").write_bytes((tmp_path / "imgs" / "0.png").read_bytes()[:60])
    args = [
        "embed",
        str(tmp_path / "imgs"),
        "--engine",
        "ray",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "c"),
        "--batch-size",
        "1",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "3 image(s) embedded" in out
    assert "on Ray; 3 computed" in out
    model_id = EncoderRecipe("bundled", "cpu")().model_id
    assert len(store_for(tmp_path / "c", model_id).shard_paths()) == 1
    assert main(args) == 0
    assert "0 computed, 3 from cache" in capsys.readouterr().out


def test_recipe_builds_the_named_model():
    enc = EncoderRecipe("bundled", "cpu")()
    assert enc.model_id.startswith("bundled:")
    assert enc.device == "cpu"


def test_store_and_export_read_back_in_ray(ray_runtime, tmp_path, write_image):
    from vlexplore.cache import store_for
    from vlexplore.export import write_embeddings

    for i in range(4):
        write_image(tmp_path / "imgs" / f"{i}.png", colour=(60 * i, 40, 200 - 40 * i), seed=i)
    col = scan_folder(tmp_path / "imgs")
    res = embed_images_ray(col, "bundled", device="cpu", cache_dir=tmp_path / "c")
    cached = ray_runtime.data.read_parquet(str(store_for(tmp_path / "c", res.model_id).directory))
    assert cached.count() == 4
    out = write_embeddings(res.collection, res.views, tmp_path / "emb.parquet", model_id=res.model_id)
    rows = ray_runtime.data.read_parquet(str(out)).take_all()
    assert sorted(r["path"] for r in rows) == sorted(res.collection.items["relpath"])
    assert len(rows[0]["emb_image"]) == res.views["image"].shape[1]


def test_ray_captions_equal_local_ones_and_fill_the_same_cache(
    ray_runtime, tiny_blip_dir, image_folder, tmp_path
):
    from vlexplore.caption import caption_images
    from vlexplore.models.registry import load_captioner
    from vlexplore.raycaption import caption_images_ray

    col = scan_folder(image_folder.root)
    progress = []
    ray_caps = caption_images_ray(
        col,
        str(tiny_blip_dir),
        device="cpu",
        cache_dir=tmp_path / "ray",
        batch_size=4,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    local = caption_images(
        col, load_captioner(str(tiny_blip_dir), device="cpu"), cache_dir=tmp_path / "local"
    )
    assert ray_caps == local
    assert sum(bool(c) for c in ray_caps) >= len(image_folder.good)
    assert progress[-1][0] == progress[-1][1]

    class NoModel:  # the local engine reads the ray run's captions as its own
        model_id = load_captioner(str(tiny_blip_dir), device="cpu").model_id

        def preprocess(self, image):
            raise AssertionError("an image was decoded although the ray run cached its caption")

    good = [c for c in caption_images(col, NoModel(), cache_dir=tmp_path / "ray", num_workers=0)]
    assert good == ray_caps


def test_cli_engine_ray_captions_into_the_export(ray_runtime, tiny_blip_dir, tmp_path, write_image, capsys):
    import pandas as pd

    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        write_image(tmp_path / "imgs" / f"{i}.png", colour=colour, seed=i)
    out = tmp_path / "emb.parquet"
    args = [
        "embed",
        str(tmp_path / "imgs"),
        "--engine",
        "ray",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "c"),
        "--captioner",
        str(tiny_blip_dir),
        "--export",
        str(out),
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert "3 image(s) captioned on Ray" in capsys.readouterr().out
    captions = pd.read_parquet(out)["caption"]
    assert len(captions) == 3
    assert (captions.str.len() > 0).all()


def test_shutdown_puts_back_the_print_ray_replaced(monkeypatch):
    import builtins
    import types

    monkeypatch.setattr(builtins, "print", lambda *a, **k: None)  # what a Ray runtime leaves behind
    calls = []
    shutdown(type("FakeRay", (), {"shutdown": staticmethod(lambda: calls.append(1))}))
    assert calls == [1]
    assert isinstance(builtins.print, types.BuiltinFunctionType)
