"""SigLIP-style scores (``sigmoid(scale · cos + bias)``) and the one cosine scale of thresholds.

A random tiny open_clip config with ``init_logit_bias`` (SigLIP's learned bias) is built locally: no
download. Thresholds are cosines for every model; for SigLIP a probability converts to that cosine
exactly, through the model's own ``logit_scale`` and ``logit_bias``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from vlexplore.cluster.prototypes import (
    PrototypeClusterer,
    ScoreScale,
    cosine_to_probability,
    probability_to_cosine,
    score_scale,
)
from vlexplore.drift import prototype_drift
from vlexplore.errors import ConfigError

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _encoder(name: str, **extra):
    from open_clip import factory

    from vlexplore.models.openclip import OpenClipEncoder

    factory._MODEL_CONFIGS[name] = {**TINY, **extra}
    return OpenClipEncoder(name, None, random_init=True, device="cpu")


@pytest.fixture(scope="module")
def siglip():
    return _encoder("vx-test-sigmoid-tiny", init_logit_scale=math.log(10.0), init_logit_bias=-10.0)


@pytest.fixture(scope="module")
def images_and_prompts(siglip):
    import torch

    colours = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
    batch = torch.stack([siglip.preprocess(Image.new("RGB", (40, 40), c)) for c in colours])
    joint = siglip.encode_image_batch(batch)["joint"]
    prompts = siglip.encode_texts(["a red thing", "a blue thing", "a dark thing"])
    return batch, joint, prompts


def test_the_model_exposes_its_scale_and_bias(siglip):
    scale = score_scale(siglip)
    assert scale is not None
    assert scale.sigmoid
    assert scale.scale == pytest.approx(10.0, rel=1e-5)
    assert scale.bias == pytest.approx(-10.0)
    clip = score_scale(_encoder("vx-test-clip-scale"))
    assert clip is not None
    assert not clip.sigmoid
    assert clip.scale == pytest.approx(1 / 0.07, rel=1e-4)
    assert score_scale(object()) is None  # the bundled model and fakes: no logit parameters


def test_probabilities_are_the_models_own_sigmoid_scores(siglip, images_and_prompts):
    import torch

    batch, joint, prompts = images_and_prompts
    with torch.inference_mode():
        out = siglip._model(batch, siglip._tokenizer(["a red thing", "a blue thing", "a dark thing"]))
    img, txt, scale, bias = out  # open_clip's forward: features, exp(logit_scale), logit_bias
    own = torch.sigmoid(scale * img @ txt.T + bias).detach().numpy()
    ours = cosine_to_probability(joint @ prompts.T, score_scale(siglip))
    np.testing.assert_allclose(ours, own, atol=1e-5)


def test_a_probability_threshold_is_exactly_its_cosine(siglip, images_and_prompts):
    _, joint, prompts = images_and_prompts
    scale = score_scale(siglip)
    sim = joint @ prompts.T
    best = sim.max(axis=1)
    p = float(cosine_to_probability(np.median(best), scale))  # half the images fall below
    cut = probability_to_cosine(p, scale)
    fit = PrototypeClusterer(prototype_embeddings=prompts, threshold=cut, refine=False).fit(joint)
    below = cosine_to_probability(best, scale) < p - 1e-9
    assert below.any()
    assert (~below).any()
    np.testing.assert_array_equal(fit.labels_ == -1, below)
    np.testing.assert_array_equal(fit.labels_[~below], sim.argmax(axis=1)[~below])
    assert cosine_to_probability(cut, scale) == pytest.approx(p)


def test_drift_is_read_on_cosines_so_a_scale_and_bias_change_no_flag(images_and_prompts):
    _, joint, prompts = images_and_prompts
    labels = (joint @ prompts.T).argmax(axis=1)
    labels[0] = (labels[0] + 1) % 3  # one image in a cluster it is not nearest
    flags = prototype_drift(joint, labels, prompts)
    # scaling every cosine by s and adding b is what SigLIP does before its sigmoid: on cosines the
    # decisions are the same for any s > 0 and b, so the flags are those of the cosines themselves
    sim = joint @ prompts.T
    for s, b in [(10.0, -10.0), (3.0, 5.0)]:
        scored = s * sim + b
        means = np.stack([scored[labels == i].mean(axis=0) for i in range(3) if (labels == i).any()])
        plain = np.stack([sim[labels == i].mean(axis=0) for i in range(3) if (labels == i).any()])
        np.testing.assert_array_equal(means.argmax(axis=1), plain.argmax(axis=1))
    assert flags == sorted(flags)
    assert set(flags) <= {0, 1, 2}


def test_bad_probabilities_and_clip_scales_are_refused():
    siglip = ScoreScale(10.0, -10.0)
    for bad in (0, 1, 1.5, -0.1, "half"):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            probability_to_cosine(bad, siglip)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SigLIP"):
        probability_to_cosine(0.5, ScoreScale(100.0))
    with pytest.raises(ConfigError, match="SigLIP"):
        cosine_to_probability(0.2, ScoreScale(100.0))
    assert probability_to_cosine(0.5, siglip) == pytest.approx(1.0)  # logit(0.5) = 0 → cos = -bias / scale


def test_text_cut_after_the_end_token_is_open_clips_own_embedding(siglip):
    import torch

    from vlexplore.models.openclip import encode_text_short

    texts = ["a", "a photo of a black grouse.", "a much longer text about a red shape on a blue ground"]
    for enc in (siglip, _encoder("vx-test-clip-cut")):
        tokens = enc._tokenizer(texts)
        with torch.inference_mode():
            full = enc._model.encode_text(tokens)
            cut = encode_text_short(enc._model, tokens)
        assert cut is not None
        assert cut.shape == full.shape
        torch.testing.assert_close(cut, full, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(
            enc.encode_texts(texts), torch.nn.functional.normalize(full, dim=-1).numpy(), atol=1e-5
        )
