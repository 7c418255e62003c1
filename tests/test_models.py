"""Model backends.

The bundled offline model (real weights, real semantics), open_clip and transformers paths (small randomly
initialised configs: mechanics only), the registry.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from vlexplore.errors import ConfigError, ModelUnavailableError
from vlexplore.models import registry
from vlexplore.models.base import l2_normalize, resolve_device, unit_rows

DEMO = Path(__file__).resolve().parent.parent / "demo"


# -- bundled: real weights ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    from vlexplore.models.bundled import BundledEncoder

    return BundledEncoder(device="cpu", cache_dir=tmp_path_factory.mktemp("bundled-cache"))


def _embed(enc, paths):
    import torch

    from vlexplore.images import open_image

    return enc.encode_image_batch(torch.stack([enc.preprocess(open_image(p)) for p in paths]))


def test_bundled_elephant_photo_lands_nearest_a_photo_of_an_elephant(bundled):
    views = _embed(bundled, [DEMO / "mammal" / "mammals-elephant.jpg", DEMO / "fruit" / "pineapple.jpg"])
    prompts = ["a photo of an elephant", "a photo of a dog", "a photo of a car", "a pineapple"]
    sims = views["joint"] @ bundled.encode_texts(prompts).T
    assert prompts[int(sims[0].argmax())] == "a photo of an elephant"
    assert prompts[int(sims[1].argmax())] == "a pineapple"


def test_bundled_views_shapes_and_norms(bundled):
    views = _embed(bundled, [DEMO / "fruit" / "pineapple.jpg"] * 2)
    assert views["image"].shape == (2, 1280)
    assert views["joint"].shape == (2, 1000)
    for v in views.values():
        assert v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(views["image"][0], views["image"][1], atol=1e-6)


def test_bundled_label_captions_name_the_top_class(bundled):
    views = _embed(bundled, [DEMO / "fruit" / "pineapple.jpg"])
    caption = bundled.label_captions(views["joint"])[0]
    assert caption.startswith("a photo of a pineapple")


def test_bundled_label_captions_reject_wrong_shape(bundled):
    with pytest.raises(ConfigError, match=r"\(n, 1000\)"):
        bundled.label_captions(np.zeros((2, 5), dtype=np.float32))


def test_bundled_text_bridge_uses_definitions(bundled):
    from vlexplore.models.bundled import imagenet_class_names

    names = imagenet_class_names()
    w = bundled.text_class_weights(["trousers"])[0]
    assert "jean" in names[int(w.argmax())]
    assert np.count_nonzero(w) == bundled.top_k
    assert w.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_bundled_packaged_class_text_matches_a_fresh_computation(bundled):
    packaged = bundled.class_text_embeddings()
    fresh = bundled.compute_class_text_embeddings()
    assert packaged.shape == fresh.shape == (1000, 384)
    assert float(np.min(np.sum(packaged * fresh, axis=1))) > 0.999


def test_bundled_preprocess_keeps_whole_image(bundled):
    wide = Image.new("RGB", (400, 100), (255, 255, 255))
    x = bundled.preprocess(wide)
    assert tuple(x.shape) == (3, 224, 224)
    # padded rows above and below are grey (0 after normalisation), the middle is white (1)
    assert float(x[0, 0, 112]) == pytest.approx(0.0039, abs=0.01)
    assert float(x[0, 112, 112]) == pytest.approx(1.0, abs=1e-3)


def test_bundled_empty_texts(bundled):
    assert bundled.encode_texts([]).shape == (0, 1000)


# -- open_clip: random tiny config ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip():
    from open_clip import factory

    factory._MODEL_CONFIGS["vx-test-tiny"] = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    from vlexplore.models.openclip import OpenClipEncoder

    return OpenClipEncoder("vx-test-tiny", None, random_init=True, device="cpu")


def test_openclip_shapes_and_norms(tiny_clip):
    import torch

    batch = torch.stack(
        [tiny_clip.preprocess(Image.new("RGB", (50, 40), c)) for c in ("red", "blue", "green")]
    )
    out = tiny_clip.encode_image_batch(batch)
    assert out["image"].shape == (3, 32)
    assert out["joint"] is out["image"]
    np.testing.assert_allclose(np.linalg.norm(out["image"], axis=1), 1.0, atol=1e-5)
    texts = tiny_clip.encode_texts(["a dog", "a cat", "a car"], batch_size=2)
    assert texts.shape == (3, 32)
    assert texts.dtype == np.float32
    assert tiny_clip.device == "cpu"
    assert tiny_clip.model_id == "open_clip:vx-test-tiny:random"


def test_openclip_batching_does_not_change_results(tiny_clip):
    a = tiny_clip.encode_texts(["one", "two", "three"], batch_size=1)
    b = tiny_clip.encode_texts(["one", "two", "three"], batch_size=3)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_openclip_loads_local_checkpoint(tiny_clip, tmp_path):
    import torch

    from vlexplore.models.openclip import OpenClipEncoder, file_digest

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_clip._model.state_dict(), ckpt)
    enc = OpenClipEncoder("vx-test-tiny", str(ckpt), device="cpu")
    assert enc.model_id == f"open_clip:vx-test-tiny:file-{file_digest(ckpt)}"
    assert enc.checkpoint == str(ckpt)
    np.testing.assert_allclose(enc.encode_texts(["a dog"]), tiny_clip.encode_texts(["a dog"]), atol=1e-5)


def test_openclip_unreachable_hub_fails_fast_with_advice(monkeypatch):
    from vlexplore.models.openclip import OpenClipEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="--model bundled"):
        OpenClipEncoder("ViT-B-32", "openai", device="cpu", cache_dir=str(Path("/nonexistent-vx-cache")))
    assert time.perf_counter() - t < 30  # no 46-second retry loop (a bound, not a benchmark)


def test_openclip_unknown_architecture():
    from vlexplore.models.openclip import OpenClipEncoder

    with pytest.raises(ConfigError, match="unknown open_clip architecture 'Not-A-Model'"):
        OpenClipEncoder("Not-A-Model", "openai", device="cpu")


def test_openclip_needs_weights_unless_random():
    from vlexplore.models.openclip import OpenClipEncoder

    with pytest.raises(ConfigError, match="pretrained tag"):
        OpenClipEncoder("ViT-B-32", None, device="cpu")


# -- transformers captioners: random tiny BLIP ----------------------------------------------------
def test_blip_captions_one_per_image(tiny_blip_parts):
    from vlexplore.models.hf_caption import HFCaptioner

    model, proc = tiny_blip_parts
    cap = HFCaptioner("tiny-blip", family="blip", device="cpu", model=model, processor=proc, max_new_tokens=4)
    out = cap.caption_batch([Image.new("RGB", (40, 30), "red"), Image.new("RGB", (30, 40), "blue")])
    assert len(out) == 2
    assert all(isinstance(t, str) and t for t in out)
    assert not cap.supports_prompts
    with pytest.raises(ConfigError, match="cannot answer questions"):
        cap.caption_batch([Image.new("RGB", (40, 30), "red")], prompt="What is it?")


def test_blip_samples_several_captions(tiny_blip_parts):
    from vlexplore.models.hf_caption import HFCaptioner

    model, proc = tiny_blip_parts
    cap = HFCaptioner(
        "tiny-blip",
        family="blip",
        device="cpu",
        model=model,
        processor=proc,
        max_new_tokens=4,
        num_captions=3,
    )
    out = cap.caption_batch([Image.new("RGB", (40, 30), "red")] * 2)
    assert len(out) == 2
    assert all(t.count(" | ") == 2 for t in out)


def test_blip_loads_from_local_directory(tiny_blip_parts, tmp_path):
    from vlexplore.models.hf_caption import HFCaptioner

    model, proc = tiny_blip_parts
    model.save_pretrained(tmp_path / "blip")
    proc.save_pretrained(tmp_path / "blip")
    cap = HFCaptioner(str(tmp_path / "blip"), family="blip", device="cpu", max_new_tokens=4)
    assert len(cap.caption_batch([Image.new("RGB", (40, 30), "red")])) == 1


def test_local_captioner_directory_by_path_alone(tiny_blip_parts, tmp_path):
    model, proc = tiny_blip_parts
    model.save_pretrained(tmp_path / "my-captioner")  # a name that says nothing: config.json tells the family
    proc.save_pretrained(tmp_path / "my-captioner")
    cap = registry.load_captioner(str(tmp_path / "my-captioner"), device="cpu")
    assert cap.family == "blip"
    assert cap.model_id.startswith("transformers:local-")
    assert len(cap.caption_batch([Image.new("RGB", (40, 30), "red")])) == 1


def test_captioner_missing_directory_is_a_clear_error(monkeypatch, tmp_path):
    from vlexplore.models.hf_caption import HFCaptioner

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match=r"not cached|could not load"):
        HFCaptioner("Salesforce/blip-image-captioning-base", device="cpu")


def test_guess_family():
    from vlexplore.models.hf_caption import guess_family

    assert guess_family("Salesforce/blip2-opt-2.7b") == "blip2"
    assert guess_family("Salesforce/blip-vqa-base") == "blip-vqa"
    assert guess_family("Salesforce/blip-image-captioning-large") == "blip"
    assert guess_family("microsoft/git-base-coco") == "git"
    with pytest.raises(ConfigError, match="family"):
        guess_family("some/other-model")


# -- registry and helpers -------------------------------------------------------------------------
def test_registry_resolves_names_tags_and_paths(tmp_path):
    assert registry.resolve_spec("bundled").backend == "bundled"
    spec = registry.resolve_spec("ViT-B-32/openai")
    assert (spec.backend, spec.name, spec.pretrained) == ("open_clip", "ViT-B-32", "openai")
    spec = registry.resolve_spec("ViT-L-14/datacomp_xl_s13b_b90k")
    assert (spec.name, spec.pretrained) == ("ViT-L-14", "datacomp_xl_s13b_b90k")
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"x")
    assert registry.resolve_spec(f"openclip:ViT-B-16:{ckpt}").pretrained == str(ckpt)
    assert registry.resolve_spec(f"ViT-B-16@{ckpt}").name == "ViT-B-16"
    assert registry.resolve_spec("blip-base", kind="captioner").backend == "transformers"
    (tmp_path / "config.json").write_text("{}")
    assert registry.resolve_spec(str(tmp_path), kind="captioner").name == str(tmp_path)


@pytest.mark.parametrize("bad", ["", "   ", "no-such-model", "openclip:ViT-B-32"])
def test_registry_rejects_unknown(bad):
    with pytest.raises(ConfigError):
        registry.resolve_spec(bad)


def test_registry_kind_mismatch():
    with pytest.raises(ConfigError, match="captioner"):
        registry.resolve_spec("blip-base", kind="encoder")


def test_encoder_names_default_first():
    assert registry.encoder_names()[0] == "bundled"
    assert "bundled-labels" in registry.captioner_names()


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


def test_l2_normalize_keeps_zero_rows():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_unit_rows_reads_normalised_rows_in_place_and_normalises_the_rest():
    x = l2_normalize(np.random.default_rng(0).normal(size=(50, 8)))
    same = unit_rows(x)
    assert np.shares_memory(same, x)  # no copy
    assert not same.flags.writeable  # and no write through it
    with pytest.raises(ValueError, match="read-only"):
        same[0, 0] = 1.0
    for other in (x * 2, x.astype(np.float64), np.vstack([x, np.zeros((1, 8), np.float32)])):
        out = unit_rows(other)
        assert not np.shares_memory(out, other)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, l2_normalize(other))


def test_bundled_preprocess_equals_torchvision_bit_for_bit():
    import torch
    import torchvision.transforms as T
    from PIL import Image, ImageOps

    from vlexplore.models.bundled import IMAGE_SIZE, PAD_COLOUR, BundledEncoder

    enc = BundledEncoder(device="cpu")
    rng = np.random.default_rng(0)
    for size, mode in (((40, 28), "RGB"), ((300, 500), "RGB"), ((28, 28), "L")):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
        square = ImageOps.pad(
            image.convert("RGB"), (IMAGE_SIZE, IMAGE_SIZE), method=Image.Resampling.BICUBIC, color=PAD_COLOUR
        )
        expected = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])(square)
        got = enc.preprocess(image.convert("RGB"))
        assert got.dtype == torch.float32
        assert got.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
        assert torch.equal(got, expected)


# -- model names: what is accepted, and loud failures ---------------------------------------------
def _tiny_checkpoint(path: Path, seed: int) -> Path:
    """A random ``vx-test-tiny`` state_dict at ``path`` (weights differ by ``seed``)."""
    import torch

    from vlexplore.models.openclip import OpenClipEncoder

    torch.manual_seed(seed)
    enc = OpenClipEncoder("vx-test-tiny", None, random_init=True, device="cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(enc._model.state_dict(), path)
    return path


def test_unknown_architecture_names_the_closest(tiny_clip):
    with pytest.raises(ConfigError) as info:
        registry.load_encoder("ViT-B-23/openai", device="cpu")
    msg = str(info.value)
    assert "'ViT-B-23'" in msg
    assert "closest:" in msg
    assert "ViT-B-32" in msg
    assert "\n" not in msg


def test_openai_spelling_of_an_architecture_suggests_open_clip_names():
    with pytest.raises(ConfigError, match=r"closest: ViT-B-32/openai"):
        registry.load_encoder("ViT-B/32", device="cpu")


def test_unknown_pretrained_tag_names_the_closest():
    with pytest.raises(
        ConfigError, match=r"no pretrained tag 'opnai' for ViT-B-32; closest: ViT-B-32/openai"
    ):
        registry.load_encoder("ViT-B-32/opnai", device="cpu")


def test_architecture_alone_asks_for_weights():
    with pytest.raises(ConfigError, match=r"needs weights: a pretrained tag \(ViT-B-32/openai"):
        registry.load_encoder("ViT-B-32", device="cpu")


def test_missing_checkpoint_is_a_config_error_naming_near_files(tmp_path):
    (tmp_path / "vitb32.pt").write_bytes(b"x")
    for name in (
        f"openclip:ViT-B-32:{tmp_path / 'vitb23.pt'}",
        str(tmp_path / "vitb23.pt"),
        f"ViT-B-32@{tmp_path / 'vitb23.pt'}",
    ):
        with pytest.raises(ConfigError) as info:
            registry.load_encoder(name, device="cpu")
        msg = str(info.value)
        assert "does not exist" in msg, msg
        assert str(tmp_path / "vitb32.pt") in msg, msg
        assert "hub" not in msg  # not misreported as a download problem


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_corrupt_checkpoint_is_a_config_error(tiny_clip, tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(
        ConfigError, match=r"checkpoint .*bad\.pt' could not be loaded into open_clip vx-test-tiny"
    ):
        registry.load_encoder(f"openclip:vx-test-tiny:{bad}", device="cpu")


def test_checkpoint_of_another_architecture_is_a_config_error(tiny_clip, tmp_path):
    from open_clip import factory

    factory._MODEL_CONFIGS["vx-test-other"] = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 16, "head_width": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
    }
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt", seed=0)
    with pytest.raises(ConfigError, match=r"could not be loaded into open_clip vx-test-other: "):
        registry.load_encoder(f"openclip:vx-test-other:{ckpt}", device="cpu")


def test_plain_checkpoint_path_assumes_vit_b_32_and_says_so(tiny_clip, tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "mine.pt", seed=0)
    with pytest.raises(ConfigError, match=r"into open_clip ViT-B-32 \(assumed; name it: openclip:ARCH"):
        registry.load_encoder(str(ckpt), device="cpu")
    named = _tiny_checkpoint(tmp_path / "vx-test-tiny-finetuned.pt", seed=0)
    assert registry.load_encoder(str(named), device="cpu").arch == "vx-test-tiny"  # the file name says which


def test_directory_without_open_clip_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"no open_clip_config.json"):
        registry.load_encoder(str(tmp_path), device="cpu")
    (tmp_path / "open_clip_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no weights file"):
        registry.load_encoder(f"local-dir:{tmp_path}", device="cpu")


def test_hf_hub_ids_are_accepted_and_checked():
    spec = registry.resolve_spec("hf-hub:timm/ViT-B-16-SigLIP")
    assert (spec.backend, spec.name, spec.pretrained) == ("open_clip", "hf-hub:timm/ViT-B-16-SigLIP", None)
    for bad in ("hf-hub:", "hf-hub:nobody", "hf-hub:a/b/c"):
        with pytest.raises(ConfigError, match="hf-hub:ORG/NAME"):
            registry.resolve_spec(bad)


def test_hf_hub_model_offline_and_not_cached_is_unavailable(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    t = time.perf_counter()
    with pytest.raises(
        ModelUnavailableError, match=r"hub model laion/CLIP-ViT-B-32-laion2B-s34B-b79K: not cached"
    ):
        registry.load_encoder("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", device="cpu")
    assert time.perf_counter() - t < 30


def _fake_hub_repo(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """Lay ``files`` out as huggingface_hub's cache would after a download of ``repo`` (blobs, snapshot, ref)."""
    import hashlib

    base = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    (base / "blobs").mkdir()
    (base / "snapshots" / commit).mkdir(parents=True)
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        (base / "blobs" / sha).write_bytes(data)
        (base / "snapshots" / commit / name).symlink_to(Path("..", "..", "blobs", sha))


def test_hf_hub_model_loads_from_the_local_hub_cache_offline(tiny_clip, monkeypatch, tmp_path):
    import json

    import torch
    from huggingface_hub import constants
    from open_clip import factory
    from safetensors.torch import save

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    state = {k: v.contiguous() for k, v in tiny_clip._model.state_dict().items()}
    weights = save(state)
    config = {"model_cfg": factory._MODEL_CONFIGS["vx-test-tiny"], "preprocess_cfg": {}}
    _fake_hub_repo(
        tmp_path / "hub",
        "vxorg/tiny-clip",
        {"open_clip_config.json": json.dumps(config).encode(), "open_clip_model.safetensors": weights},
    )
    enc = registry.load_encoder("hf-hub:vxorg/tiny-clip", device="cpu")
    import hashlib

    assert enc.model_id == f"open_clip:hf-hub:vxorg/tiny-clip:hub-{hashlib.sha256(weights).hexdigest()[:32]}"
    np.testing.assert_allclose(enc.encode_texts(["a dog"]), tiny_clip.encode_texts(["a dog"]), atol=1e-6)
    x = torch.stack([tiny_clip.preprocess(Image.new("RGB", (40, 30), "red"))])
    np.testing.assert_allclose(
        enc.encode_image_batch(x)["image"], tiny_clip.encode_image_batch(x)["image"], atol=1e-6
    )


def test_hf_hub_repo_with_config_but_no_weights_is_never_a_random_model(tiny_clip, monkeypatch, tmp_path):
    import json

    from huggingface_hub import constants
    from open_clip import factory

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    config = {"model_cfg": factory._MODEL_CONFIGS["vx-test-tiny"], "preprocess_cfg": {}}
    _fake_hub_repo(tmp_path / "hub", "vxorg/half", {"open_clip_config.json": json.dumps(config).encode()})
    with pytest.raises(ModelUnavailableError, match="not cached"):
        registry.load_encoder("hf-hub:vxorg/half", device="cpu")


def test_fallback_only_for_an_unavailable_valid_model(monkeypatch, tmp_path):
    from vlexplore.config import EncodeConfig
    from vlexplore.pipeline import load_encoder_or_fallback

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for bad in ("ViT-Foo/bar", "ViT-B-32/nope", f"openclip:ViT-B-32:{tmp_path / 'missing.pt'}"):
        with pytest.raises(ConfigError):
            load_encoder_or_fallback(EncodeConfig(model=bad, device="cpu", cache_dir=tmp_path))
    enc, note = load_encoder_or_fallback(
        EncodeConfig(model="ViT-B-32/openai", device="cpu", cache_dir=tmp_path)
    )
    assert enc.model_id.startswith("bundled:")
    assert "not cached" in note
    assert "bundled" in note


def test_cli_unknown_architecture_exits_2_with_one_line(tmp_path, write_image):
    import os
    import subprocess
    import sys

    write_image(tmp_path / "images" / "a.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLEXPLORE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "vlexplore", "embed", str(tmp_path / "images"), "--model", "ViT-Foo/bar"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: unknown open_clip architecture 'ViT-Foo'"), proc.stderr
    assert "closest: ViT-" in lines[0]
    assert "note:" not in proc.stdout + proc.stderr  # no silent fallback to the bundled model


def test_cli_cuda_without_gpu_exits_2(tmp_path, write_image, capsys, monkeypatch):
    import torch

    from vlexplore import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("VLEXPLORE_CACHE_DIR", str(tmp_path / "cache"))
    write_image(tmp_path / "images" / "a.png")
    assert cli.main(["embed", str(tmp_path / "images"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto"


# -- cache identity of local weights --------------------------------------------------------------
def test_checkpoint_id_is_its_content_not_its_name(tiny_clip, tmp_path):
    import shutil

    a = _tiny_checkpoint(tmp_path / "one" / "vitb32.pt", seed=1)
    b = _tiny_checkpoint(tmp_path / "two" / "vitb32.pt", seed=2)
    copy = tmp_path / "three" / "renamed.pt"
    copy.parent.mkdir()
    shutil.copy2(a, copy)
    ids = [registry.load_encoder(f"openclip:vx-test-tiny:{p}", device="cpu").model_id for p in (a, b, copy)]
    assert ids[0] != ids[1], "two different vitb32.pt share a cache namespace"
    assert ids[0] == ids[2], "a copied checkpoint got a new id"
    assert "vitb32" not in ids[0]
    assert str(tmp_path) not in ids[0]


def test_file_digest_is_remembered_by_path_size_and_mtime(tmp_path, monkeypatch):
    import os

    from vlexplore.models import digests as oc

    reads = []
    real = oc._hasher

    def counting():
        algo, h = real()
        reads.append(1)
        return algo, h

    monkeypatch.setattr(oc, "_hasher", counting)
    monkeypatch.setattr(oc, "_digests", {})
    f = tmp_path / "w.pt"
    f.write_bytes(b"weights" * 1000)
    memo = tmp_path / "memo"
    d1 = oc.file_digest(f, memo_dir=memo)
    n_after_first = len(reads)
    assert oc.file_digest(f, memo_dir=memo) == d1
    monkeypatch.setattr(oc, "_digests", {})  # a new process: only the memo file is left
    hashed = []
    monkeypatch.setattr(
        oc,
        "open",
        lambda *a, **k: hashed.append(a) or open(*a, **k),  # noqa: SIM115 (a spy on open)
        raising=False,
    )
    assert oc.file_digest(f, memo_dir=memo) == d1
    assert not hashed
    assert (memo / oc.DIGEST_FILE).is_file()
    assert n_after_first >= 1
    f.write_bytes(b"other weights" * 1000)
    os.utime(f, ns=(1, 1))
    assert oc.file_digest(f, memo_dir=memo) != d1
    assert hashed


def test_file_digest_uses_blake3_when_installed(tmp_path):
    from vlexplore.models.openclip import file_digest

    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    try:
        import blake3
    except ImportError:  # pragma: no cover - requirements.txt installs it
        assert file_digest(f).startswith("b2-")
    else:
        assert file_digest(f) == "b3-" + blake3.blake3(b"abc").hexdigest()[:32]


def test_captioner_directory_id_is_its_content(tiny_blip_parts, tmp_path):
    import shutil

    from vlexplore.models.hf_caption import _content_tag

    model, proc = tiny_blip_parts
    model.save_pretrained(tmp_path / "a" / "blip")
    proc.save_pretrained(tmp_path / "a" / "blip")
    shutil.copytree(tmp_path / "a" / "blip", tmp_path / "b" / "blip")
    assert _content_tag(str(tmp_path / "a" / "blip")) == _content_tag(str(tmp_path / "b" / "blip"))
    (tmp_path / "b" / "blip" / "config.json").write_text(
        (tmp_path / "b" / "blip" / "config.json").read_text() + " "
    )
    assert _content_tag(str(tmp_path / "a" / "blip")) != _content_tag(str(tmp_path / "b" / "blip"))
    assert _content_tag("Salesforce/blip-image-captioning-base") is None


# -- captioner names --------------------------------------------------------------------------------
def test_captioner_names_and_loud_failures(tmp_path):
    assert registry.resolve_spec("blip2", kind="captioner").name == "Salesforce/blip2-opt-2.7b"
    for key in ("blip-base", "blip-large", "git-base"):
        assert registry.resolve_spec(key, kind="captioner").backend == "transformers"
    with pytest.raises(ConfigError, match="closest: blip-base"):
        registry.resolve_spec("blip-bse", kind="captioner")
    with pytest.raises(ConfigError, match="captioner directory '/nonexistent-vx/blip' does not exist"):
        registry.resolve_spec("/nonexistent-vx/blip", kind="captioner")
    with pytest.raises(ConfigError, match=r"no config.json"):
        registry.resolve_spec(str(tmp_path), kind="captioner")


def test_broken_captioner_directory_is_a_config_error(tmp_path):
    from vlexplore.models.hf_caption import HFCaptioner

    (tmp_path / "config.json").write_text('{"model_type": "blip"}')
    with pytest.raises(ConfigError, match="could not be loaded as blip"):
        HFCaptioner(str(tmp_path), device="cpu")


def test_guess_family_reads_a_directory_config(tmp_path):
    from vlexplore.models.hf_caption import guess_family

    (tmp_path / "config.json").write_text(
        '{"model_type": "blip", "architectures": ["BlipForQuestionAnswering"]}'
    )
    assert guess_family(str(tmp_path)) == "blip-vqa"
    (tmp_path / "config.json").write_text('{"model_type": "git"}')
    assert guess_family(str(tmp_path)) == "git"


# -- devices: GPU by design, tested with mocks ------------------------------------------------------
def test_resolve_device_auto_prefers_cuda_then_mps(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="only 2 CUDA GPU"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no Apple GPU"):
        resolve_device("mps")


def test_encoder_asked_for_cuda_without_gpu_is_a_config_error(monkeypatch, tiny_clip):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        registry.load_encoder("ViT-B-32/openai", device="cuda")


class _Recorder:
    """Stands for ``torch.autocast``: remembers how it was made and whether a call ran inside it."""

    made: ClassVar[list] = []
    inside = False

    def __init__(self, device_type, dtype=None, **kwargs):
        _Recorder.made.append((device_type, dtype))

    def __enter__(self):
        _Recorder.inside = True

    def __exit__(self, *exc):
        _Recorder.inside = False


def test_cuda_autocast_picks_bf16_or_fp16(monkeypatch):
    import contextlib

    import torch

    from vlexplore.models.base import cuda_autocast

    monkeypatch.setattr(_Recorder, "made", [])
    monkeypatch.setattr(torch, "autocast", _Recorder)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    cuda_autocast("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    cuda_autocast("cuda:1")
    assert _Recorder.made == [("cuda", torch.bfloat16), ("cuda", torch.float16)]
    assert isinstance(cuda_autocast("cpu"), contextlib.nullcontext)


def test_to_device_pins_and_copies_without_blocking():
    import torch

    from vlexplore.models.base import to_device

    calls = []

    class FakeTensor:
        def is_pinned(self):
            return False

        def pin_memory(self):
            calls.append("pin")
            return self

        def to(self, device, non_blocking=False):
            calls.append((device, non_blocking))
            return self

    to_device(FakeTensor(), "cuda:0")
    assert calls == ["pin", ("cuda:0", True)]
    x = torch.ones(2)
    assert to_device(x, "cpu") is x  # the CPU path hands over the same tensor


def test_openclip_forward_on_cuda_uses_autocast_and_pinned_copies(monkeypatch):
    import torch

    from vlexplore.models import openclip as oc

    enc = oc.OpenClipEncoder("vx-test-tiny", None, random_init=True, device="cpu")
    moved = []
    monkeypatch.setattr(oc, "to_device", lambda t, d: moved.append(d) or t)
    monkeypatch.setattr(oc, "cuda_autocast", lambda d: _Recorder(d))
    seen = []
    real_image, real_text = enc._model.encode_image, oc.encode_text_short  # texts: the cut text tower
    monkeypatch.setattr(enc._model, "encode_image", lambda x: seen.append(_Recorder.inside) or real_image(x))
    monkeypatch.setattr(
        oc, "encode_text_short", lambda m, t: seen.append(_Recorder.inside) or real_text(m, t)
    )
    enc.device = "cuda"
    enc.encode_image_batch(torch.zeros(2, 3, 32, 32))
    enc.encode_texts(["a dog"])
    assert moved == ["cuda", "cuda"]
    assert seen == [True, True]


def test_openclip_cpu_forward_is_the_plain_float32_forward(tiny_clip):
    import torch

    batch = torch.stack([tiny_clip.preprocess(Image.new("RGB", (50, 40), c)) for c in ("red", "blue")])
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(tiny_clip._model.encode_image(batch).float(), dim=-1).numpy()
    assert np.array_equal(tiny_clip.encode_image_batch(batch)["image"], expected)


def test_captioner_generate_on_cuda_uses_autocast_and_half_inputs(tiny_blip_parts, monkeypatch):
    import torch

    from vlexplore.models import hf_caption

    _, proc = tiny_blip_parts
    seen = {}

    class FakeCudaModel:
        dtype = torch.bfloat16

        def to(self, device):
            seen["to"] = device
            return self

        def eval(self):
            return self

        def generate(self, **inputs):
            seen["dtype"] = inputs["pixel_values"].dtype
            seen["inside"] = _Recorder.inside
            return torch.tensor([[101, 2417, 102]] * len(inputs["pixel_values"]))

    moved = []
    monkeypatch.setattr(hf_caption, "resolve_device", lambda d: "cuda")
    monkeypatch.setattr(hf_caption, "to_device", lambda t, d: moved.append(d) or t)
    monkeypatch.setattr(hf_caption, "cuda_autocast", lambda d: _Recorder(d))
    cap = hf_caption.HFCaptioner(
        "tiny-blip", family="blip", device="cuda", model=FakeCudaModel(), processor=proc
    )
    out = cap.caption_batch([Image.new("RGB", (40, 30), "red")] * 2)
    assert len(out) == 2
    assert seen == {"to": "cuda", "dtype": torch.bfloat16, "inside": True}
    assert moved
    assert set(moved) == {"cuda"}


def _hub_error(name: str, message: str) -> Exception:
    """A huggingface_hub error without an HTTP response (their constructors want one)."""
    from huggingface_hub import errors

    cls = getattr(errors, name)
    exc = cls.__new__(cls, message)
    Exception.__init__(exc, message)
    return exc


def test_offline_first_tells_a_misspelt_hub_model_from_an_unavailable_one(monkeypatch):
    from huggingface_hub import errors

    from vlexplore.models import hub
    from vlexplore.models import openclip as oc

    def failing(second):
        calls = []

        def build():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("Failed to download") from errors.LocalEntryNotFoundError(
                    "not in the cache"
                )
            raise RuntimeError("Failed initial config load") from second

        return build

    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    with pytest.raises(
        ModelUnavailableError, match="x: not cached here, and the model hub cannot be reached; do y"
    ):
        oc.offline_first(failing(None), "x", "do y")
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    with pytest.raises(ConfigError, match="does not exist on the model hub"):
        oc.offline_first(failing(_hub_error("RepositoryNotFoundError", "404")), "hub model org/nope", "")
    with pytest.raises(ModelUnavailableError, match="gated"):
        oc.offline_first(failing(_hub_error("GatedRepoError", "401")), "hub model org/gated", "")
    with pytest.raises(ModelUnavailableError, match="could not fetch"):
        oc.offline_first(failing(OSError("connection reset")), "hub model org/flaky", "")
    with pytest.raises(ValueError, match="broken"):  # not a cache miss: no second try, no hub
        oc.offline_first(lambda: (_ for _ in ()).throw(ValueError("broken")), "x", "")


def test_captioner_hub_models_offline_are_unavailable(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for name in ("blip-large", "blip2", "git-base"):
        with pytest.raises(
            ModelUnavailableError, match="not cached here, and the model hub cannot be reached"
        ):
            registry.load_captioner(name, device="cpu")
