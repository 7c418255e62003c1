"""A lazy encoder: its identity without torch or open_clip, its weights on first use (once), a refusal when they changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vlexplore as vx
from vlexplore.errors import ConfigError, ModelUnavailableError
from vlexplore.models import registry
from vlexplore.models.lazy import LazyEncoder

REPO = Path(__file__).resolve().parent.parent
ARCH = "vx-lazy-tiny"
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _state(seed: int) -> dict:
    import open_clip
    import torch

    torch.manual_seed(seed)
    return {k: v.detach().clone().contiguous() for k, v in open_clip.CLIP(**TINY).state_dict().items()}


def write_model_dir(out: Path, seed: int = 0) -> Path:
    """A random tiny open_clip model laid out as a hub repo: config + safetensors weights."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}))
    save_file(_state(seed), str(out / "open_clip_model.safetensors"))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Model names of every local kind: a directory, its weights file, a checkpoint of a named or guessed arch."""
    import torch
    from open_clip import factory

    factory._MODEL_CONFIGS[ARCH] = TINY
    base = tmp_path_factory.mktemp("lazy-models")
    directory = write_model_dir(base / "tiny-clip")
    ckpt = base / f"{ARCH}-weights.pt"
    torch.save(_state(1), ckpt)
    return {
        "directory": str(directory),
        "weights file": str(directory / "open_clip_model.safetensors"),
        "named checkpoint": f"openclip:{ARCH}:{ckpt}",
        "guessed checkpoint": str(ckpt),
    }


@pytest.mark.parametrize("kind", ["directory", "weights file", "named checkpoint", "guessed checkpoint"])
def test_identity_is_the_eager_encoders(models, kind, tmp_path):
    lazy = registry.load_encoder(models[kind], device="cpu", cache_dir=tmp_path, lazy=True)
    assert isinstance(lazy, LazyEncoder)
    assert not lazy.loaded
    eager = registry.load_encoder(models[kind], device="cpu", cache_dir=tmp_path)
    assert (lazy.model_id, lazy.description, lazy.views, lazy.device) == (
        eager.model_id,
        eager.description,
        tuple(eager.views),
        eager.device,
    )
    x = eager.encode_texts(["a red square"])
    np.testing.assert_allclose(lazy.encode_texts(["a red square"]), x, atol=1e-6)
    assert lazy.loaded


def test_bundled_and_arch_tag_identities_need_no_weights():
    bundled = registry.load_encoder("bundled", device="cpu", lazy=True)
    assert bundled.model_id == registry.load_encoder("bundled", device="cpu").model_id
    assert bundled._backbone is None  # built on first use
    tagged = registry.load_encoder("ViT-B-32/OpenAI", device="cpu", lazy=True)
    assert isinstance(tagged, LazyEncoder)
    assert not tagged.loaded
    assert tagged.model_id == "open_clip:ViT-B-32:openai"  # open_clip's spelling of the tag, as loading gives
    with pytest.raises(ConfigError, match="closest"):  # an unknown architecture is still an error at once
        registry.load_encoder("ViT-Foo/bar", device="cpu", lazy=True)


def test_hub_model_identity_from_the_local_hub_cache(models, monkeypatch, tmp_path):
    from huggingface_hub import constants
    from test_models import _fake_hub_repo

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    directory = Path(models["directory"])
    files = {
        n: (directory / n).read_bytes() for n in ("open_clip_config.json", "open_clip_model.safetensors")
    }
    _fake_hub_repo(tmp_path / "hub", "vxorg/lazy-tiny", files)
    lazy = registry.load_encoder("hf-hub:vxorg/lazy-tiny", device="cpu", lazy=True)
    assert isinstance(lazy, LazyEncoder)
    assert lazy.model_id == registry.load_encoder("hf-hub:vxorg/lazy-tiny", device="cpu").model_id
    # not in the hub cache: loaded now, as without lazy, and the pipeline falls back to bundled
    with pytest.raises(ModelUnavailableError):
        registry.load_encoder("hf-hub:vxorg/absent", device="cpu", lazy=True)
    from vlexplore.pipeline import load_encoder_or_fallback

    enc, note = load_encoder_or_fallback(
        vx.EncodeConfig(model="hf-hub:vxorg/absent", device="cpu"), lazy=True
    )
    assert enc.model_id.startswith("bundled")
    assert "bundled" in note


def _counting(enc: LazyEncoder, pause: float = 0.0) -> list[int]:
    calls: list[int] = []
    build = enc._build

    def counted():
        calls.append(1)
        time.sleep(pause)
        return build()

    enc._build = counted
    return calls


def test_weights_load_once_on_first_use(models):
    enc = registry.load_encoder(models["directory"], device="cpu", lazy=True)
    calls = _counting(enc)
    assert not hasattr(enc, "label_captions")  # open_clip has none: said without loading
    assert callable(enc.encode_texts)
    assert enc.cache_dir is None
    assert not enc.loaded
    assert calls == []
    enc.encode_texts(["a dog"])
    tensor = enc.preprocess(Image.new("RGB", (40, 30), "red"))
    out = enc.encode_image_batch(tensor[None])
    scale, bias = enc.logit_params
    assert enc.checkpoint.endswith("open_clip_model.safetensors")
    assert calls == [1]
    assert out["image"].shape == (1, 16)
    assert scale > 0
    assert bias is None


def test_concurrent_first_uses_load_once(models):
    enc = registry.load_encoder(models["named checkpoint"], device="cpu", lazy=True)
    calls = _counting(enc, pause=0.2)
    start = threading.Barrier(6)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def use():
        start.wait()
        try:
            results.append(enc.encode_texts(["a blue circle"]))
        except BaseException as exc:  # pragma: no cover - the failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert calls == [1]
    assert len(results) == 6
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_weights_changed_since_opening_are_refused_in_one_line(models, tmp_path):
    from safetensors.torch import save_file

    directory = tmp_path / "copy"
    shutil.copytree(models["directory"], directory)
    enc = registry.load_encoder(str(directory), device="cpu", cache_dir=tmp_path / "cache", lazy=True)
    save_file(_state(7), str(directory / "open_clip_model.safetensors"))
    with pytest.raises(ConfigError, match="changed since it was opened") as info:
        enc.encode_texts(["a dog"])
    assert "\n" not in str(info.value)
    assert enc.model_id in str(info.value)
    assert not enc.loaded
    with pytest.raises(ConfigError, match="changed since it was opened"):  # the same answer, not a reload
        enc.preprocess(Image.new("RGB", (8, 8)))


def test_a_broken_checkpoint_is_the_eager_error_at_first_use(tmp_path):
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}))
    (directory / "open_clip_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ConfigError, match="could not be loaded"):
        registry.load_encoder(str(directory), device="cpu")
    enc = registry.load_encoder(str(directory), device="cpu", lazy=True)
    with pytest.raises(ConfigError, match="could not be loaded"):
        enc.encode_texts(["a dog"])


CHILD = """
import json, sys
import numpy as np
import vlexplore as vx
from vlexplore.models.registry import load_encoder
folder, cache, out = sys.argv[1], sys.argv[2], sys.argv[3]
report = {}
for model in sys.argv[4:]:
    enc = load_encoder(model, device="auto", cache_dir=cache, lazy=True)
    emb = vx.embed(vx.scan(folder, cache_dir=cache), vx.EncodeConfig(model=model, cache_dir=cache), encoder=enc)
    np.save(f"{out}/{len(report)}.npy", emb.views["image"])
    report[model] = {"n_computed": emb.n_computed, "n": emb.n, "captions": emb.captions}
report["modules"] = sorted(m for m in ("torch", "open_clip", "timm", "sentence_transformers") if m in sys.modules)
print(json.dumps(report))
"""


def test_a_cached_folder_opens_without_torch_or_open_clip(models, tmp_path):
    folder, cache = tmp_path / "images", tmp_path / "cache"
    folder.mkdir()
    for i, colour in enumerate(("red", "green", "blue", "yellow")):
        Image.new("RGB", (40, 30), colour).save(folder / f"{i}.png")
    names = [models["directory"], "bundled"]
    eager = []
    for model in names:
        cfg = vx.EncodeConfig(model=model, device="cpu", cache_dir=cache)
        eager.append(vx.embed(vx.scan(folder, cache_dir=cache), cfg))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(cache), str(tmp_path), *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report.pop("modules") == []
    for i, (model, emb) in enumerate(zip(names, eager, strict=True)):
        assert report[model]["n_computed"] == 0
        assert report[model]["n"] == 4
        assert report[model]["captions"] == emb.captions  # bundled: its label captions, still without torch
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), emb.views["image"])


def test_the_app_warms_the_model_up_once_in_the_background(models, monkeypatch):
    from ui import cached

    monkeypatch.setattr(cached, "WARM_UP_DELAY_S", 0.0)
    enc = registry.load_encoder(models["directory"], device="cpu", lazy=True)
    thread = cached.start_model_warm_up(enc)
    assert thread is not None
    thread.join(timeout=120)
    assert enc.loaded
    assert cached.start_model_warm_up(enc) is None


def test_the_model_warm_up_waits_while_pages_run(monkeypatch):
    import time

    from ui import cached

    monkeypatch.setattr(cached, "WARM_UP_DELAY_S", 0.4)
    done: list[float] = []
    cached.note_activity()
    thread = __import__("threading").Thread(
        target=cached._later, args=(lambda: done.append(time.monotonic()),)
    )
    thread.start()
    busy_until = time.monotonic() + 1.0
    while time.monotonic() < busy_until:  # a page runs every 0.1 s for a second
        cached.note_activity()
        time.sleep(0.1)
        assert not done
    thread.join(timeout=10)
    assert done
    assert done[0] - busy_until >= 0.25  # it waited for the quiet after the last page


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_background_work_runs_at_a_lower_priority_than_the_pages(monkeypatch):
    import os

    from ui import cached

    monkeypatch.setattr(cached, "WARM_UP_DELAY_S", 0.0)
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def work():
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=cached._later, args=(work,))  # what the model warm-up thread runs
    thread.start()
    thread.join(timeout=30)
    job = cached.map_executor().submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    seen.append(job.result(timeout=30))  # the map's layout worker
    assert seen == [max(cached.BACKGROUND_NICE, main)] * 2
    assert (
        os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main
    )  # the page's thread is untouched
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == main


def test_embed_falls_back_to_bundled_when_a_lazy_models_weights_cannot_be_had(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from vlexplore.pipeline import load_encoder_or_fallback

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    folder = tmp_path / "images"
    folder.mkdir()
    for colour in ("red", "blue"):
        Image.new("RGB", (40, 30), colour).save(folder / f"{colour}.png")
    cfg = vx.EncodeConfig(model="ViT-B-32/openai", device="cpu", cache_dir=tmp_path / "cache")
    enc, note = load_encoder_or_fallback(cfg, lazy=True)
    assert isinstance(enc, LazyEncoder)
    assert note is None
    emb = vx.embed(vx.scan(folder, cache_dir=cfg.cache_dir), cfg, encoder=enc)  # not cached: weights wanted
    assert emb.model_id.startswith("bundled:")
    assert emb.n == 2
    assert "not cached" in emb.fallback_note
    with pytest.raises(ModelUnavailableError, match="not cached"):  # a search with it: one error
        enc.encode_texts(["a dog"])


def test_background_imports_take_long_lived_objects_out_of_the_per_page_collection():
    import gc

    from ui import cached

    gc.unfreeze()
    try:
        cached._import_all(cached.BACKGROUND_IMPORTS)  # what the background thread runs, run here
        # what the imports left is skipped by Streamlit's gc.collect(2) after each page run
        assert gc.get_freeze_count() > 10 * len(gc.get_objects())
    finally:
        gc.unfreeze()
