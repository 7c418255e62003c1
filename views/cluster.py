"""Cluster: pick a method and its parameters; re-cluster the stored embeddings (no model pass, map reused)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import vlexplore as vx
from ui import actions, state
from ui.feedback import error_banner, md_escape, show_flash
from ui.widgets import METHODS, chip, cluster_colours, method_summary
from vlexplore.cluster.density import default_min_cluster_size
from vlexplore.cluster.prototypes import cosine_to_probability, score_scale
from vlexplore.heatmaps import ami_figure

s = state.get()
st.title("Cluster")
show_flash(s)
if not s.has_data:
    st.info("No folder loaded yet. Choose one on the **Load** page.", icon=":material/folder_open:")
    st.page_link("views/load.py", label="Go to Load", icon=":material/folder_open:")
    st.stop()

HELP = {
    "kmeans": "Splits the images into k groups of similar look. Fast; every image gets a cluster.",
    "agglomerative": "Merges the most similar images step by step until k groups are left.",
    "hdbscan": "Finds dense groups on its own and leaves outliers as **noise**; you set the smallest group size.",
    "prototypes": "You name the groups (“dog, cat, car”); each image goes to the prompt it is most similar to.",
}
n = s.n_images
current = s.clustered.config if s.clustered is not None else vx.ClusterConfig()
method = st.radio(
    "Method",
    list(METHODS),
    format_func=METHODS.get,
    horizontal=True,
    index=list(METHODS).index(current.method),
    key="method",
)
st.caption(HELP[method])

REPRESENTATIONS = {
    "image": "Image embedding",
    "caption-tfidf": "Captions · TF-IDF",
    "caption-sbert": "Captions · sentence embeddings",
    "keywords": "Caption keywords",
    "prompt": "Answers to your questions (prompt-guided)",
    "nouns": "Image + nouns (TAC)",
    "relations": "Image–noun relations",
    "centres": "Learned semantic centres",
    "pair": "Image + its caption (image–text pairs)",
}
REP_HELP = (
    "What the clustering runs on. Text-guided (Stephan et al. 2024): the images' captions or answers, "
    "vectorised. Language-assisted (TAC 2024; Ma et al. 2026): image embeddings combined with, or "
    "described by, a noun vocabulary. Pairs: each image together with its caption (yours, from photo.txt or "
    "captions.csv, or the captioner's). With the bundled model the captions are ImageNet labels."
)

with st.form("cluster_form", border=True):
    kwargs: dict = {"method": method}
    if method == "prototypes":
        kwargs["representation"] = "image"
    else:
        r1, r2 = st.columns([2, 3])
        rep = r1.selectbox(
            "Represent images by",
            list(REPRESENTATIONS),
            index=list(REPRESENTATIONS).index(current.representation),
            format_func=REPRESENTATIONS.get,
            help=REP_HELP,
        )
        kwargs["representation"] = rep
        questions = r2.text_area(
            "Questions (prompt-guided; one per line)",
            value="\n".join(current.questions) or "What is the main object in this image?",
            height=80,
            help="Each question gives its own clustering; the one with the lowest k-means loss is kept. "
            "The bundled model answers with the ImageNet labels most related to the question — "
            "not a real VQA model.",
        )
        kwargs["questions"] = tuple(q.strip() for q in questions.splitlines() if q.strip())
    if method in ("kmeans", "agglomerative"):
        k_default = current.k or actions.suggested_k(s)
        c1, c2 = st.columns(2)
        kwargs["k"] = int(
            c1.number_input(
                "Number of clusters k",
                min_value=2,
                max_value=max(2, min(500, n)),
                value=min(max(2, k_default), max(2, n)),
                help=f"Suggested from the data: {actions.suggested_k(s)}.",
            )
        )
        if method == "agglomerative":
            kwargs["linkage"] = c2.selectbox(
                "Linkage",
                ["ward", "average"],
                help="ward: compact groups (euclidean); average: cosine similarity, tolerates odd shapes.",
            )
        else:
            kwargs["seed"] = int(c2.number_input("Seed", min_value=0, value=int(current.seed)))
    elif method == "hdbscan":
        default_mcs = current.min_cluster_size or default_min_cluster_size(n)
        c1, c2 = st.columns(2)
        kwargs["min_cluster_size"] = int(
            c1.number_input(
                "Smallest cluster (images)",
                min_value=2,
                max_value=max(2, n),
                value=min(max(2, default_mcs), max(2, n)),
                help="Groups smaller than this become noise. Default: about 5 % of the images, at least 5.",
            )
        )
        kwargs["reduce_dims"] = int(
            c2.number_input(
                "Reduce to dimensions first",
                min_value=2,
                max_value=256,
                value=int(current.reduce_dims),
                help="HDBSCAN works on a UMAP reduction of the embeddings (cosine; computed once, then cached).",
            )
        )
        kwargs["assign_noise"] = st.checkbox(
            "Give noise images to their nearest cluster",
            value=bool(current.assign_noise),
            help="Off: images in no dense group stay as noise (their share is shown after clustering).",
        )
    else:
        text = st.text_area(
            "Prototypes — one per line or comma-separated",
            value=", ".join(current.prototypes) if current.prototypes else "",
            placeholder="dog, cat, car",
            height=100,
        )
        kwargs["prototypes"] = tuple(vx.parse_prompts(text)) if text.strip() else ()
        c1, c2, c3 = st.columns(3)
        use_threshold = c1.checkbox(
            "Send weak matches to “other”",
            value=current.threshold is not None,
            help="Images whose best similarity to any prototype is below the threshold are not forced into one.",
        )
        similarity = s.clustered.similarity if s.clustered is not None else None
        if current.threshold is not None:
            default_threshold = float(current.threshold)
        elif similarity is not None:  # the last prototype run says where this model's similarities lie
            default_threshold = round(float(np.quantile(similarity, 0.1)), 2)
        else:  # the bundled model's similarities are small; CLIP's lie around 0.2-0.3
            default_threshold = 0.05 if s.emb.model_id.startswith("bundled") else 0.2
        threshold = c2.slider(
            "Similarity threshold",
            min_value=-1.0,
            max_value=1.0,
            step=0.01,
            value=default_threshold,
            help="Cosine similarity of image and prompt embeddings: the same scale for every model.",
        )
        kwargs["threshold"] = float(threshold) if use_threshold else None
        scale = score_scale(getattr(s.emb, "encoder", None))
        if scale is not None and scale.sigmoid:  # SigLIP: the slider's cosine as the model's own probability
            c2.caption(
                f"SigLIP match probability at {threshold:.2f}: {cosine_to_probability(threshold, scale):.3f}"
            )
        if similarity is not None:
            q = np.quantile(similarity, [0.1, 0.5, 0.9])
            c2.caption(
                f"Current similarities: 10 % below {q[0]:.2f}, median {q[1]:.2f}, 10 % above {q[2]:.2f}"
            )
        kwargs["discover_rest"] = c3.checkbox(
            "Discover the rest",
            value=bool(current.discover_rest),
            help="Cluster the images left in “other” with k-means (k suggested from the data).",
        )
        kwargs["refine"] = c3.checkbox(
            "Refine boundaries on the images",
            value=bool(current.refine),
            help="The prompts pick the groups, then k-means on the image embeddings (one centre per prompt, "
            "names kept) moves the boundaries to where the images are. Off: pure zero-shot assignment.",
        )
    n1, n2 = st.columns(2)
    naming = n1.selectbox(
        "Cluster names from",
        ["auto", "vocabulary", "captions"],
        index=["auto", "vocabulary", "captions"].index(current.naming),
        format_func={
            "auto": "auto",
            "vocabulary": "words in the model's joint space",
            "captions": "counted caption keywords",
        }.get,
        help="Vocabulary: about 8,000 nouns (the ImageNet classes for the bundled model) chosen for fitting "
        "each cluster better than the others; captions: the most frequent caption words (Stephan et al.).",
    )
    extra = n2.text_input(
        "Extra words for names",
        value=", ".join(current.options.get("naming_words", ())),
        placeholder="e.g. coin, sneaker",
        help="Comma-separated words added to the naming vocabulary.",
    )
    kwargs["naming"] = naming
    words = tuple(vx.parse_prompts(extra)) if extra.strip() else ()
    if words:
        kwargs["options"] = {**kwargs.get("options", {}), "naming_words": words}
    n_edits = len(s.edit_log)
    submitted = st.form_submit_button("Cluster", type="primary")
    if n_edits:
        st.caption(f"Re-clustering replaces the current clusters and your {n_edits} hand edit(s).")

if submitted:
    with error_banner():
        cfg = vx.ClusterConfig(**kwargs)
    actions.recluster(s, cfg)
    s.say("success", f"{METHODS[method]}: {s.n_clusters} clusters in {s.timings.get('cluster', 0):.1f} s.")
    st.rerun()

if s.has_clusters:
    colours = cluster_colours(s)
    sizes = s.sizes()
    cfg = s.clustered.config
    st.subheader(f"{s.n_clusters} clusters · {md_escape(method_summary(s))}")
    drifted = set(s.clustered.info.get("drifted") or [])
    rows = [
        {"cluster": s.name(c), "images": sizes[c], "keywords": ", ".join(s.clustered.keywords.get(c, [])[:5])}
        | ({"members drifted from the prompt": c in drifted} if drifted else {})
        for c in s.order()
    ]
    st.markdown(
        " &nbsp; ".join(chip(colours[c], f"{s.name(c)} ({sizes[c]:,})", bold=False) for c in s.order()),
        unsafe_allow_html=True,
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    info = s.clustered.info or {}
    if "noise_share" in info:
        assigned = " (then given to their nearest clusters)" if info.get("noise_assigned") else ""
        st.caption(f"HDBSCAN left {float(info['noise_share']):.0%} of the images as noise{assigned}.")
    if info.get("prompt_ranking"):
        st.markdown(f"**Prompts ranked by k-means loss** (chosen: *{md_escape(info.get('chosen_prompt'))}*)")
        if info.get("answerer"):
            st.caption(md_escape(info["answerer"]))
        st.dataframe(pd.DataFrame(info["prompt_ranking"]), hide_index=True, width="stretch")
        if len(info.get("ami_prompts") or []) > 1:
            st.plotly_chart(ami_figure(info["ami"], info["ami_prompts"]), width="stretch")
    if info.get("centre_nouns"):
        st.markdown("**Learned semantic centres** — each centre's nearest nouns")
        st.dataframe(
            pd.DataFrame(
                [
                    {"cluster": s.name(c), "nearest nouns": ", ".join(v)}
                    for c, v in info["centre_nouns"].items()
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    if info.get("rounds"):
        st.markdown(
            "**Rounds** — confident share, images that changed cluster, objective before → after training"
        )
        st.dataframe(pd.DataFrame(info["rounds"]), hide_index=True, width="stretch")
    if info.get("confident") is not None:
        confident = np.asarray(info["confident"], dtype=bool)
        st.caption(
            f"confident: {confident.mean():.0%} of images (most of their 10 nearest neighbours share their cluster); "
            "the rest are uncertain"
        )
    for key in ("text_source", "selected_nouns_summary"):
        if info.get(key):
            st.caption(f"{key.replace('_', ' ')}: {md_escape(info[key])}")
    c1, c2 = st.columns(2)
    c1.page_link("views/clusters.py", label="Look at the clusters", icon=":material/grid_view:")
    c2.page_link("views/map.py", label="See them on the map", icon=":material/scatter_plot:")
