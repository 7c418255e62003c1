"""Text-guided image clustering (Stephan et al., EACL 2024): images → text → clusters.

Four builders for :data:`vlexplore.represent.BUILDERS`, each ``fn(emb, cfg) -> Representation``:

:func:`caption_tfidf` (TF-IDF of captions), :func:`caption_sbert` (their sentence embeddings),
:func:`keyword_tfidf` (TF-IDF of caption keywords) and :func:`prompt_guided` (one clustering per
question, prompts ranked by k-means loss in one shared space, AMI between them).
:func:`explanation_scores` rates cluster keywords, against folder names or without labels.

Captions come from ``cfg.options["captioner"]`` when it names a real captioner (BLIP, BLIP-2, GIT,
a local directory; cached), else from ``emb.captions``: for the bundled model *label captions* (its
top ImageNet classes as text), not sentences. Offline, questions are "answered" by the bundled
classifier (:func:`offline_answers`) — not a real VQA model, and every result says so.

``cfg.options``: ``captioner``, ``num_captions``, ``device``, ``sentence_model``, ``cache_dir``,
``label_top`` (classes per label caption), ``max_keywords``, ``answer_top``, ``prompt_weight``
(typed, with their defaults, in :mod:`vlexplore.options`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .explain_scores import MATCH_COSINE, explanation_scores  # noqa: F401  (re-exported)
from .models.base import l2_normalize
from .options import textguided_options
from .represent import Representation
from .sentences import _named_embedder, embed_sentences, sentence_embedder  # noqa: F401
from .sidecar import merge_captions
from .textfeatures import KEYWORD_MIN_DF, _keyword_analyzer, extract_keywords, tfidf_matrix

DEFAULT_QUESTIONS = ("What is the main object in this image?",)
#: How strongly a question steers the offline answers (0 = plain label captions). Chosen on 1,000
#: Fashion-MNIST *train* images among 0.25/0.5/1: at 1 the question's favourite classes swamp the image.
PROMPT_WEIGHT = 0.5
OFFLINE_ANSWERER = (
    "bundled ImageNet classifier answering with the labels most likely for the image and most related "
    "to the question — a stand-in, not a real VQA model"
)
LABEL_CAPTIONS = "bundled label captions (top ImageNet classes as text; not a real captioner)"


# --------------------------------------------------------------------------- options and texts


def _option(cfg, name: str, *, minimum: float = 1):
    value = getattr(textguided_options(cfg.options), name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ConfigError(f"option {name!r} must be a number >= {minimum}, got {value!r}")
    return value


def _cache_dir(emb, cfg) -> Path | None:
    """``cfg.options["cache_dir"]``, else ``emb.cache_dir``, else the encoder's, else ``None`` (no disk cache)."""
    d = (
        textguided_options(cfg.options).cache_dir
        or getattr(emb, "cache_dir", None)
        or getattr(emb.encoder, "cache_dir", None)
    )
    return Path(d) if d else None


def _load_captioner(cfg):
    """The real captioner ``cfg.options["captioner"]`` names, or ``None`` for the bundled label captions.

    Raises:
        ConfigError: unknown name. ModelUnavailableError: its weights cannot be had.
    """
    name = textguided_options(cfg.options).captioner
    if name is None or name in ("bundled", "bundled-labels"):
        return None
    from .models.registry import resolve_spec

    spec = resolve_spec(str(name), kind="captioner")
    if spec.backend == "bundled":
        return None
    from .models.hf_caption import HFCaptioner

    return HFCaptioner(
        spec.name,
        device=textguided_options(cfg.options).device,
        family=spec.options.get("family"),
        num_captions=int(_option(cfg, "num_captions")),
    )


def image_captions(emb, cfg) -> tuple[list[str], str]:
    """One text per image and where it came from.

    Returns:
        ``(captions, source)``: ``n`` captions (a real captioner's, ``" | "``-joined when sampled,
        or the label captions) and a description of their source.

    Raises:
        ConfigError: unknown captioner, or no image has a caption.
    """
    captioner = _load_captioner(cfg)
    if captioner is not None:
        from .caption import caption_images

        texts, source = (
            caption_images(emb.collection, captioner, cache_dir=_cache_dir(emb, cfg)),
            captioner.description,
        )
    elif (
        textguided_options(cfg.options).label_top is not None
        and hasattr(emb.encoder, "label_captions")
        and "joint" in emb.views
    ):
        texts = emb.encoder.label_captions(emb.views["joint"], top=int(_option(cfg, "label_top")))
        source = LABEL_CAPTIONS
    else:
        texts, source = (
            list(emb.captions or []),
            LABEL_CAPTIONS if hasattr(emb.encoder, "label_captions") else "captions",
        )
    if len(texts) != emb.n:
        raise ConfigError(f"got {len(texts)} captions for {emb.n} images; caption the images again")
    texts = merge_captions(emb.collection, texts)  # the user's own captions win over any model's
    if not any(t and t.strip() for t in texts):
        raise ConfigError(
            "the images have no captions to cluster on; choose a captioner such as blip-base "
            "or the bundled model, whose label captions come for free",
            option="captioner",
        )
    return list(texts), source


# --------------------------------------------------------------------------- builders


def caption_tfidf(emb, cfg) -> Representation:
    """Captions → TF-IDF (≤ 6,000 terms, stop words removed) → L2-normalised ``float32 (n, V)`` rows.

    ``(n, 256)`` LSA when ``n × V`` is large; ``info["svd_dims"]`` says so.
    """
    texts, source = image_captions(emb, cfg)
    x, info = tfidf_matrix(texts, seed=cfg.seed)
    return Representation(X=x, texts=texts, info={"text_source": source, **info})


def caption_sbert(emb, cfg) -> Representation:
    """Captions → sentence embeddings ``float32 (n, d)`` (d = 384 for MiniLM), rows L2-normalised."""
    texts, source = image_captions(emb, cfg)
    embedder = sentence_embedder(emb, cfg)
    x = embed_sentences(texts, embedder, cache_dir=_cache_dir(emb, cfg))
    return Representation(
        X=x, texts=texts, info={"text_source": source, "sentence_model": getattr(embedder, "model_id", "")}
    )


def keyword_tfidf(emb, cfg) -> Representation:
    """Keywords of each caption (:func:`extract_keywords`) → TF-IDF over keywords and their words.

    ``rep.texts`` are the keyword strings ("letter opener; bulletproof vest"); images whose caption has
    no frequent keyword get a zero row.
    """
    texts, source = image_captions(emb, cfg)
    kws = extract_keywords(texts, max_keywords=int(_option(cfg, "max_keywords")))
    kw_texts = ["; ".join(k) for k in kws]
    if not any(kw_texts):
        raise ConfigError(
            f"no keyword occurs in {KEYWORD_MIN_DF} or more captions; use caption-tfidf instead"
        )
    x, info = tfidf_matrix(kw_texts, analyzer=_keyword_analyzer, seed=cfg.seed)
    return Representation(
        X=x,
        texts=kw_texts,
        info={
            "text_source": source,
            **info,
            "no_keyword_share": float(np.mean([not k for k in kws])),
        },
    )


# --------------------------------------------------------------------------- prompts


def offline_answers(
    joint: np.ndarray, question: str, encoder, *, top: int = 2, weight: float = PROMPT_WEIGHT
) -> list[str]:
    """Answer ``question`` for each image with ImageNet labels — the bundled stand-in for VQA.

    A class scores the image's standardised logit plus ``weight`` × the standardised MiniLM cosine
    of the question and the class text (in log terms: the classifier's posterior times a prior from
    the question); the ``top`` best are the answer ("sandal, clog"). It cannot read, count or see
    anything outside ImageNet's 1,000 concepts.

    Args:
        joint: ``(n, 1000)`` the bundled ``joint`` view (centred, L2-normalised logits).
        question: the question put to every image.
        encoder: the bundled encoder.
        top: classes in each answer.
        weight: 0 = ignore the question (plain label captions).

    Returns:
        ``n`` answers.
    """
    from .models.bundled import imagenet_class_names

    joint = np.asarray(joint, dtype=np.float32)
    if joint.ndim != 2 or joint.shape[1] != 1000:
        raise ConfigError(
            f"offline answers need the bundled joint view of shape (n, 1000), got {joint.shape}"
        )
    names = imagenet_class_names()
    rel = encoder.class_text_embeddings() @ encoder.sentence.encode([question])[0]
    rel = (rel - rel.mean()) / max(float(rel.std()), 1e-6)
    score = (
        joint * np.float32(math.sqrt(joint.shape[1])) + np.float32(weight) * rel.astype(np.float32)[None, :]
    )
    idx = np.argsort(-score, axis=1)[:, :top]
    return [", ".join(names[j][0] for j in row) for row in idx]


def _questions(cfg) -> tuple[str, ...]:
    qs = []
    for q in cfg.questions:
        if not isinstance(q, str):
            raise ConfigError(f"questions must be strings, got {q!r}")
        if q.strip() and q.strip() not in qs:
            qs.append(q.strip())
    return tuple(qs) or DEFAULT_QUESTIONS


def rank_prompts(spaces: Mapping[str, np.ndarray], *, k: int, seed: int = 0, sample_size: int = 5000) -> dict:
    """Cluster each prompt's space with k-means (K = ``k``) and rank the prompts (Stephan et al.).

    The spaces must share one normalised embedding space (e.g. sentence embeddings of the answers)
    so the k-means losses compare. k-means runs on the distinct rows weighted by their counts (the
    same objective, much faster when answers repeat), 10 restarts, the lowest loss kept. Rank: prompts
    with fewer distinct answers than ``k`` last (their loss is trivially 0), then inertia (lower
    better), then silhouette (cosine, seeded sample; higher better).

    Args:
        spaces: prompt → ``(n, d)`` vectors, all the same shape.
        k: clusters per prompt.
        seed: random state of k-means and of the silhouette sample.
        sample_size: most points for the silhouette.

    Returns:
        ``{"table": [{"prompt", "rank", "inertia", "silhouette", "n_distinct", "degenerate"}] (best
        first), "labels": {prompt: int64 (n,)}, "ami": float (p, p) in ``prompts`` order,
        "prompts": [...], "chosen": best prompt}``.
    """
    from sklearn.metrics import adjusted_mutual_info_score, silhouette_score

    from .cluster import KMEANS_N_INIT, kmeans

    prompts = list(spaces)
    if not prompts:
        raise ConfigError("rank_prompts needs at least one prompt")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    labels: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    for p in prompts:
        x = l2_normalize(spaces[p])
        uniq, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        if len(uniq) <= k:  # every distinct answer its own cluster: loss 0, nothing learnt
            lab, inertia = inverse.astype(np.int64), 0.0
        else:
            km = kmeans(uniq, k, n_init=KMEANS_N_INIT, seed=seed, sample_weight=counts)
            lab, inertia = km.labels[inverse], km.inertia
        n_lab = len(np.unique(lab))
        sil = float("nan")
        if 2 <= n_lab <= len(x) - 1:
            with contextlib.suppress(ValueError):  # a sample that caught a single cluster
                sil = float(
                    silhouette_score(
                        x, lab, metric="cosine", sample_size=min(sample_size, len(x)), random_state=seed
                    )
                )
        labels[p] = lab
        rows.append(
            {
                "prompt": p,
                "inertia": inertia,
                "silhouette": sil,
                "n_distinct": len(uniq),
                "degenerate": bool(len(uniq) < k),
            }
        )
    rows.sort(
        key=lambda r: (r["degenerate"], r["inertia"], -float(np.nan_to_num(float(r["silhouette"]), nan=-2.0)))
    )
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    ami = np.eye(len(prompts))
    for i in range(len(prompts)):
        for j in range(i + 1, len(prompts)):
            ami[i, j] = ami[j, i] = adjusted_mutual_info_score(labels[prompts[i]], labels[prompts[j]])
    return {"table": rows, "labels": labels, "ami": ami, "prompts": prompts, "chosen": rows[0]["prompt"]}


def prompt_guided(emb, cfg) -> Representation:
    """Prompt-guided clustering.

    One clustering per question in ``cfg.questions`` (default :data:`DEFAULT_QUESTIONS`), the best by k-means
    loss kept.

    Answers come from a VQA-capable captioner (``cfg.options["captioner"]``: ``blip-vqa-base``,
    ``blip2-opt-2.7b``, ``git-base``…) or, offline, from :func:`offline_answers` (not a real VQA
    model; ``info["answerer"]`` says so). All answers are embedded with one sentence model, so the
    prompts share a normalised space and one K (``cfg.k`` or :func:`~vlexplore.cluster.suggest_k`
    of the image view).

    Returns:
        The chosen prompt's ``X`` ``float32 (n, d)`` (answer embeddings) and ``texts`` (its answers);
        with k-means also its ``labels``. ``info``: ``chosen_prompt``, ``answerer``, ``k``,
        ``prompt_ranking`` (table, best first), ``prompt_labels``, ``prompt_answers``, ``ami`` and
        ``ami_prompts`` (the AMI matrix's row order).
    """
    from .cluster import suggest_k

    questions = _questions(cfg)
    captioner = _load_captioner(cfg)
    if captioner is not None and not getattr(captioner, "supports_prompts", False):
        raise ConfigError(
            f"captioner {textguided_options(cfg.options).captioner!r} cannot answer questions; "
            "choose a VQA-capable one (blip-vqa-base, blip2-opt-2.7b, git-base)"
        )
    joint = emb.views.get("joint")
    if captioner is None and not (hasattr(emb.encoder, "class_text_embeddings") and joint is not None):
        raise ConfigError(
            "prompt-guided clustering needs a captioner that answers questions "
            "(such as blip-vqa-base) or the bundled model"
        )
    answers: dict[str, list[str]] = {}
    for q in questions:
        if captioner is not None:
            from .caption import caption_images

            answers[q] = caption_images(emb.collection, captioner, prompt=q, cache_dir=_cache_dir(emb, cfg))
        else:
            answers[q] = offline_answers(
                joint,
                q,
                emb.encoder,
                top=int(_option(cfg, "answer_top")),
                weight=float(_option(cfg, "prompt_weight", minimum=0)),
            )
    embedder = sentence_embedder(emb, cfg)
    spaces = {q: embed_sentences(a, embedder, cache_dir=_cache_dir(emb, cfg)) for q, a in answers.items()}
    k = cfg.k if cfg.k is not None else suggest_k(emb.views["image"], seed=cfg.seed)
    k = max(1, min(int(k), emb.n))
    ranking = rank_prompts(spaces, k=k, seed=cfg.seed)
    best = ranking["chosen"]
    info = {
        "chosen_prompt": best,
        "k": k,
        "answerer": captioner.description if captioner is not None else OFFLINE_ANSWERER,
        "prompt_ranking": ranking["table"],
        "prompt_labels": ranking["labels"],
        "prompt_answers": answers,
        "ami": ranking["ami"],
        "ami_prompts": ranking["prompts"],
    }
    labels = ranking["labels"][best] if cfg.method == "kmeans" and not cfg.prototypes else None
    return Representation(X=spaces[best], texts=answers[best], labels=labels, info=info)
