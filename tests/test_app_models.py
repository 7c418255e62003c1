"""The Load page chooses the encoder and the captioner: registry names, typed ids, local directories."""

from __future__ import annotations

import shutil

from test_app_pages import data, env, run_page, state_of, texts  # noqa: F401  (fixtures and helpers)


def _other(at, key: str, value: str):
    at.selectbox(key=key).set_value("other…").run()
    at.text_input(key=f"{key}_typed").set_value(value).run()
    return at


def _load(at, folder):
    at.text_input(key="folder_input").set_value(str(folder)).run()
    at.radio[0].set_value("cpu")
    at.button[-1].click().run()
    return at


def test_a_model_directory_and_a_captioner_directory_load(data, aligned_clip, tiny_blip_dir):  # noqa: F811
    model_dir = data.base / "models" / "aligned"
    cap_dir = data.base / "models" / "blip"
    if not model_dir.exists():
        shutil.copytree(aligned_clip.model_dir, model_dir)
        shutil.copytree(tiny_blip_dir, cap_dir)
    at = run_page("load")
    _other(at, "model_pick", str(model_dir))
    _other(at, "captioner_pick", str(cap_dir))
    _load(at, data.root)
    assert not at.exception
    assert not at.error, texts(at.error)
    s = state_of(at)
    assert s.emb.model_id.startswith("open_clip:local-dir")
    assert s.emb.fallback_note is None
    assert all(s.emb.captions)
    assert not any(c.startswith("a photo of a") for c in s.emb.captions)
    assert s.model == str(model_dir)
    assert s.captioner == str(cap_dir)
    assert not any(s.name(c).startswith("cluster ") for c in s.order())


def test_model_weights_outside_the_roots_are_refused_before_anything_is_read(data, tmp_path):  # noqa: F811
    weights = tmp_path / "elsewhere" / "ckpt.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"not a checkpoint")
    at = run_page("load")
    _other(at, "model_pick", f"openclip:ViT-B-32:{weights}")
    _load(at, data.root)
    assert "outside the folders this app may read" in texts(at.error)
    assert not state_of(at).has_data


def test_a_misspelt_model_is_an_error_banner_naming_close_names(data):  # noqa: F811
    at = run_page("load")
    _other(at, "model_pick", "ViT-Foo/bar")
    _load(at, data.root)
    assert "closest" in texts(at.error)
    assert not state_of(at).has_data


def test_the_cluster_page_chooses_the_naming_source_and_adds_words(data):  # noqa: F811
    from test_app_pages import seeded

    at = run_page("cluster", seeded(data))
    names_box = next(b for b in at.selectbox if b.label == "Cluster names from")
    names_box.set_value("vocabulary")
    next(t for t in at.text_input if t.label == "Extra words for names").set_value("crimson, azure")
    at.form_submit_button[0].click().run()
    s = state_of(at)
    assert not at.error
    assert s.clustered.config.naming == "vocabulary"
    assert s.clustered.config.options["naming_words"] == ("crimson", "azure")
    assert s.clustered.info["naming"]["source"] == "vocabulary"
