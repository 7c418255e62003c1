"""What the command line prints besides results: progress bars, the info lines, plain notes."""

from __future__ import annotations

import argparse
import sys


def tqdm_progress(desc: str):
    """A progress callback that draws a tqdm bar labelled ``desc`` (none when every item was cached)."""
    from tqdm import tqdm

    bar = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            if done >= total:  # everything came from the cache: no bar, no meaningless rate
                return
            # disable=None: no bar when stderr is not a terminal (a log file gets no "\r" redraws);
            # initial=done: the cached images do not count towards the rate
            bar = tqdm(
                total=total,
                initial=done,
                desc=desc,
                unit="img",
                file=sys.stderr,
                dynamic_ncols=True,
                disable=None,
            )
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return on_progress


#: ``Clustered.info`` entries the cluster command prints, with the words it prints them as; the
#: other entries (backend, restarts, k, internal tables) stay in the provenance file.
INFO_LINES = {
    "text_source": "texts clustered",
    "sentence_model": "sentence model",
    "svd_dims": "LSA dimensions",
    "answerer": "answers from",
    "selected_nouns_summary": "nouns",
    "noise_assigned": "noise images assigned to a cluster",
    "fallback": "note",
}


#: Configuration fields → the flags that set them: an error about a field is prefixed with its flag.
CONFIG_FLAGS = {
    "k": "--k",
    "captioner": "--captioner",
    "model": "--model",
    "n_init": "--n-init",
    "seed": "--seed",
    "threshold": "--threshold",
    "prototypes": "--prototypes",
    "min_cluster_size": "--min-cluster-size",
    "min_samples": "--min-samples",
    "nouns": "--nouns",
    "naming_words": "--naming-words",
    "questions": "--question",
}


def error_line(exc: Exception) -> str:
    """``error: --k: 12 clusters asked for, …``: the flag of the field the error is about, when known."""
    flag = CONFIG_FLAGS.get(getattr(exc, "option", None) or "")
    return f"error: {flag}: {exc}" if flag else f"error: {exc}"


def short_of_k(a: argparse.Namespace, labels) -> str:
    """Why fewer clusters came back than ``--k`` asked for (identical or near-identical images), or ''."""
    if a.k is None or a.method in ("hdbscan", "prototypes"):
        return ""
    found = len(set(labels.tolist()) - {-1})
    if found >= a.k:
        return ""
    return (
        f"asked for --k {a.k}, but {a.method} found only {found} distinct group(s): "
        "the other images are identical or too alike to split further"
    )


def quiet_model_loading() -> None:
    """No "Loading weights" bar from transformers on every run (download bars of the hub stay)."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        return
    import huggingface_hub.utils
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.enable_progress_bars()  # disable_progress_bar() turns the hub's off too
