"""Load: choose a folder (inside the allowed roots), a model and a device; embed and cluster it."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

import vlexplore as vx
from ui import actions, session_panel, state
from ui.feedback import error_banner, md_code, md_escape, show_flash
from vlexplore import paths
from vlexplore.models.registry import MODELS, encoder_names

s = state.get()
st.title("Load a folder")
# Bad configuration (an unparsable secrets.toml, a `roots` secret of the wrong type, a VLEXPLORE_ROOTS
# without a folder, `/` as a root) stops the page with one line; it never falls back to wider roots.
with error_banner("Allowed folders misconfigured"):
    secret = paths.secret_roots(st.secrets)
    allowed = paths.allowed_roots(secrets_roots=secret)
show_flash(s)

MODEL_LABELS = {
    "bundled": "bundled offline model (ImageNet concepts)",
}
OTHER = "other…"
#: Captioners offered by name; "" = none (the bundled model gives its label captions).
CAPTIONERS = {
    "": "none",
    "blip-base": "BLIP base",
    "blip-large": "BLIP large",
    "blip2": "BLIP-2 (OPT-2.7b)",
    "git-base": "GIT base",
    OTHER: "other: a hub id or a local model directory…",
}


def model_label(name: str) -> str:
    """The label the model picker shows for registry name ``name``."""
    if name == OTHER:
        return "other: an open_clip ARCH/TAG, hf-hub:org/name, a checkpoint file or a model directory…"
    return MODEL_LABELS.get(name) or f"{name} — {MODELS[name].description}"


def _pick(
    label: str,
    options: list[str],
    current: str,
    *,
    key: str,
    fmt,
    typed_label: str,
    placeholder: str,
    help: str,
) -> str:
    """A selectbox of known names plus "other…", which opens a text box; returns the chosen id (stripped)."""
    known = current in options and current != OTHER
    choice = st.selectbox(
        label,
        options,
        index=options.index(current) if known else options.index(OTHER),
        format_func=fmt,
        key=key,
        help=help,
    )
    if choice != OTHER:
        return choice
    typed = st.text_input(
        typed_label, value="" if known else current, placeholder=placeholder, key=f"{key}_typed"
    )
    return typed.strip()


def _open(path: str) -> None:
    st.session_state["folder_input"] = path


# The folder box starts on the loaded folder, else the start-up folder, else the first root.
if "folder_input" not in st.session_state:
    start = s.folder or paths.startup_folder() or allowed[0]
    st.session_state["folder_input"] = str(start)

left, right = st.columns([3, 2], gap="large")
with left:
    folder_text = st.text_input(
        "Image folder",
        key="folder_input",
        help="Every image below this folder is included; sub-folder names are used as labels for evaluation.",
    )
    try:
        here: Path | None = paths.check_folder(folder_text, allowed)
    except vx.VlexploreError as exc:
        here = None
        st.error(md_escape(exc), icon=":material/block:")
    st.caption("Allowed roots: " + " · ".join(md_code(r) for r in allowed))
    if paths.ROOTS_ENV not in os.environ and secret is None:
        _, home_note = paths.home_root()
        if home_note:
            st.caption(md_escape(home_note))

    with st.expander("Browse sub-folders", expanded=False):
        if here is None:
            st.caption("Start from one of the allowed roots:")
            for i, r in enumerate(allowed):
                st.button(md_escape(r), key=f"root-{i}", on_click=_open, args=(str(r),))
        else:
            up = paths.parent_within(here, allowed)
            subs = paths.subfolders(here, allowed)
            c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
            c1.button("⬆ Up", disabled=up is None, on_click=_open, args=(str(up),), width="stretch")
            if subs:
                label = (
                    f"{len(subs)} sub-folder{'s' if len(subs) != 1 else ''} of {md_code(here.name or here)}"
                )
                pick = c2.selectbox(label, subs, key="browse_pick")
                st.button("Open sub-folder", on_click=_open, args=(str(here / pick),))
            else:
                c2.caption("no sub-folders here")

    # Saved work (before the Load button in the page, which stays the page's last button).
    with st.expander("Sessions — your saved work", expanded=s.session is not None):
        session_panel.open_session(s)
        reopen = session_panel.saved_list(s, allowed)

with right:
    model = _pick(
        "Model",
        [*encoder_names(), OTHER],
        s.model,
        key="model_pick",
        fmt=model_label,
        typed_label="Model id or path",
        placeholder="ViT-B-32/laion2b_s34b_b79k · hf-hub:timm/ViT-B-16-SigLIP · /models/my-clip/",
        help="Hub models download their weights the first time; a misspelt name or a missing file is an error. "
        "Only a valid hub model that cannot be fetched falls back to the bundled model, and the app says so. "
        "Local weights must lie inside the allowed roots.",
    )
    captioner = _pick(
        "Captioner",
        list(CAPTIONERS),
        s.captioner,
        key="captioner_pick",
        fmt=CAPTIONERS.get,
        typed_label="Captioner id or directory",
        placeholder="Salesforce/blip-image-captioning-base · /models/blip/",
        help="Captions name clusters, appear on hover and in grids, and fill the export's caption column; "
        "they are computed once per image and cached.",
    )
    if model == "bundled":
        st.caption(
            "The **bundled offline model** ships with the app and needs no network. It knows ImageNet's 1,000 "
            "concepts only; its captions are class labels (“a photo of a sandal, or a clog”), not sentences."
        )
    devices = ["auto", "cpu", "cuda"]
    device = st.radio(
        "Device", devices, horizontal=True, index=devices.index(s.device) if s.device in devices else 0
    )
    go = st.button("Load and cluster", type="primary", width="stretch", disabled=here is None or not model)

if go and here is not None:
    with error_banner("Model not allowed"):
        paths.check_model_path(model, allowed)
        paths.check_model_path(captioner, allowed)
    actions.load_folder(s, here, model=model, device=device, captioner=captioner)
    if s.has_clusters:
        st.switch_page("views/clusters.py")

if s.has_data:
    emb = s.emb
    st.divider()
    st.markdown(f"#### Loaded {md_code(s.folder)}")
    if emb.fallback_note:
        st.warning(md_escape(emb.fallback_note), icon=":material/warning:")
    cached_text = (
        "embeddings cached"
        if emb.n_computed == 0
        else f"{emb.n_computed:,} embedded now, {emb.n - emb.n_computed:,} from the cache"
    )
    st.markdown(f"**{emb.n:,} images**, {cached_text}")
    st.caption(f"Model: {md_escape(emb.model_description)}")
    if s.timings:
        words = {"scan": "scan", "embed": "embedding", "cluster": "last clustering"}
        st.caption("Time: " + " · ".join(f"{words.get(k, k)} {v:.1f} s" for k, v in s.timings.items()))
    skipped: pd.DataFrame = emb.collection.skipped
    if len(skipped):
        with st.expander(f"{len(skipped):,} file{'s' if len(skipped) != 1 else ''} skipped — why"):
            summary = skipped["reason"].value_counts().rename_axis("reason").reset_index(name="files")
            st.dataframe(summary, hide_index=True, width="stretch")
            st.dataframe(skipped[["relpath", "reason"]], hide_index=True, width="stretch", height=240)
    else:
        st.caption("No files skipped.")
    if s.has_clusters:
        st.page_link(
            "views/clusters.py", label=f"See the {s.n_clusters} clusters", icon=":material/grid_view:"
        )

if reopen is not None:
    with error_banner("Model not allowed"):
        paths.check_model_path(reopen[1], allowed)
    actions.load_folder(s, reopen[0], model=reopen[1], device=s.device, captioner=s.captioner)
    if s.has_clusters:
        st.switch_page("views/clusters.py")
