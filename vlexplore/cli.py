"""``python -m vlexplore``: the library's steps, headless.

python -m vlexplore cluster FOLDER --method prototypes --prototypes "dog, cat, car" --out labelled.csv
python -m vlexplore embed FOLDER --model ViT-B-32/openai
python -m vlexplore embed FOLDER --engine ray --address auto
python -m vlexplore scan FOLDER
python -m vlexplore search FOLDER "a red car" --top 10 --out results.csv
python -m vlexplore duplicates FOLDER --threshold 0.88 --out dups.csv
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .cli_args import build_parser
from .cli_output import INFO_LINES, error_line, quiet_model_loading, short_of_k, tqdm_progress
from .config import ClusterConfig, EncodeConfig
from .errors import VlexploreError
from .textsafe import printable


# Every line goes through printable(): file names, folder names, captions, cluster names and error
# messages are untrusted, and an ESC sequence or a carriage return in one could rewrite the report.
def _out(text: str) -> None:
    print(printable(text))


def _err(text: str) -> None:
    print(printable(text), file=sys.stderr)


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show each warning as one escaped line on stderr (once per text); cache-write trouble once in all."""
    seen: set = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from .errors import CacheWriteWarning

        if issubclass(category, CacheWriteWarning):
            if CacheWriteWarning in seen:
                return
            seen.add(CacheWriteWarning)
            _err(f"note: {message} (results are computed in memory and still written)")
            return
        if category.__name__ == "ConvergenceWarning":  # sklearn's; the CLI says what matters itself
            return
        key = (category, str(message))
        if key not in seen:
            seen.add(key)
            _err(f"warning: {message}")

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)  # repeats are dropped by show()
        warnings.showwarning = show
        yield


def _encode_config(a: argparse.Namespace) -> EncodeConfig:
    return EncodeConfig(
        model=a.model, device=a.device, batch_size=a.batch_size, num_workers=a.workers, cache_dir=a.cache_dir
    )


def _print_skipped(collection) -> None:
    skipped = collection.skipped
    if len(skipped):
        _err(f"skipped {len(skipped)} file(s):")
        for row in skipped.head(20).itertuples():
            _err(f"  {row.relpath}: {row.reason}")
        if len(skipped) > 20:
            _err(f"  … and {len(skipped) - 20} more")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def _print_prompt_ranking(info: Mapping[str, Any]) -> None:
    """Prompt-guided clustering: the prompts ranked by k-means loss (* = chosen) and their AMI matrix."""
    ranking = info.get("prompt_ranking")
    if not ranking:
        return
    _out("prompts, ranked by k-means loss in the shared answer space (lower is better):")
    for r in ranking:
        mark = "*" if r["prompt"] == info.get("chosen_prompt") else " "
        note = "  (fewer distinct answers than clusters)" if r["degenerate"] else ""
        _out(
            f" {mark}{r['rank']:>2}. inertia {r['inertia']:.2f}  silhouette {_fmt(r['silhouette'])}  "
            f"{r['n_distinct']} distinct answers  {r['prompt']}{note}"
        )
    order = info.get("ami_prompts") or []
    if len(order) > 1:
        _out("AMI between the prompts' clusterings:")
        for i, p in enumerate(order):
            _out("  " + " ".join(f"{v:5.2f}" for v in info["ami"][i]) + f"  {p}")


def cmd_scan(a: argparse.Namespace) -> int:
    """``scan``: list the folder's images, sub-folder labels and skipped files."""
    from .pipeline import scan

    col = scan(a.folder, cache_dir=a.cache_dir, captions=a.captions)
    labels = col.labels
    _out(f"{len(col)} readable image(s) in {a.folder}")
    if labels is not None:
        _out(f"{len(set(labels))} classes from sub-folder names")
    sources = col.user_captions.sources
    if sources:
        _out(
            f"{len(col.user_captions.texts)} image(s) with your own caption ("
            + ", ".join(f"{k}: {v}" for k, v in sources.items())
            + ")"
        )
    _print_skipped(col)
    return 0


def cmd_embed(a: argparse.Namespace) -> int:
    """``embed``: compute (or read from the cache) the folder's embeddings."""
    from .pipeline import embed, scan

    if a.export is not None and a.export.suffix.lower() != ".parquet":  # refused before any work
        _err(f"error: --export {a.export.name}: the file name must end in .parquet")
        return 2
    if a.export is not None and a.export.exists() and not a.overwrite:
        _err(f"error: {a.export} exists; pass --overwrite to replace it")
        return 2
    col = scan(a.folder, cache_dir=a.cache_dir, captions=a.captions)
    if a.engine == "ray":
        from .distributed import embed_images_ray

        enc = _encode_config(a)
        res = embed_images_ray(
            col,
            a.model,
            device=a.device,
            cache_dir=enc.resolved_cache_dir,
            batch_size=a.batch_size,
            address=a.address,
            actors=a.actors,
            gpus_per_actor=a.gpus_per_actor,
            on_progress=tqdm_progress("embedding (ray)"),
        )
        _print_skipped(res.collection)
        dims = ", ".join(f"{k} {v.shape[1]}-d" for k, v in res.views.items() if v.ndim == 2)
        _out(
            f"{len(res.collection)} image(s) embedded with {res.model_id} ({dims}) on Ray; "
            f"{res.n_computed} computed, {len(res.collection) - res.n_computed} from cache"
        )
        captions = None
        if (a.captioner or "").strip() not in ("", "none", "bundled", "bundled-labels"):
            from .raycaption import caption_images_ray

            captions = caption_images_ray(
                res.collection,
                a.captioner,
                device=a.device,
                cache_dir=enc.resolved_cache_dir,
                address=a.address,
                actors=a.actors,
                gpus_per_actor=a.gpus_per_actor,
                on_progress=tqdm_progress("captioning (ray)"),
            )
            _out(f"{sum(bool(c) for c in captions)} image(s) captioned on Ray")
        if res.collection.user_captions.texts:  # the user's own captions win, as on the local engine
            from .sidecar import merge_captions

            captions = merge_captions(res.collection, captions)
        _export_embeddings(a, res.collection, res.views, res.model_id, captions)
        return 0
    captioner = _captioner(a)
    emb = embed(
        col,
        _encode_config(a),
        captioner=captioner,
        on_progress=tqdm_progress("embedding"),
        on_caption_progress=tqdm_progress("captioning") if captioner is not None else None,
    )
    if emb.fallback_note:
        _err(f"note: {emb.fallback_note}")
    _print_skipped(emb.collection)
    dims = ", ".join(f"{k} {v.shape[1]}-d" for k, v in emb.views.items() if v.ndim == 2)
    _out(
        f"{emb.n} image(s) embedded with {emb.model_id} ({dims}); {emb.n_computed} computed, "
        f"{emb.n - emb.n_computed} from cache"
    )
    _export_embeddings(a, emb.collection, emb.views, emb.model_id, emb.captions)
    return 0


def _export_embeddings(a: argparse.Namespace, collection, views, model_id: str, captions) -> None:
    if a.export is None:
        return
    from .export import write_embeddings

    path = write_embeddings(
        collection, views, a.export, model_id=model_id, captions=captions, overwrite=a.overwrite
    )
    _out(f"wrote {len(collection)} rows to {path}")


def _captioner(a: argparse.Namespace):
    """The captioner ``--captioner`` names (loaded once, before any work), or ``None`` for none/bundled labels."""
    name = (a.captioner or "").strip()
    if not name or name in ("bundled", "bundled-labels", "none"):
        return None
    from .models.registry import load_captioner

    return load_captioner(name, device=a.device)


def cmd_cluster(a: argparse.Namespace) -> int:
    """``cluster``: embed, cluster, name and write the labelled table."""
    from .encode import parse_prompts
    from .options import option_names
    from .pipeline import cluster_embedded, embed, scan, to_dataframe

    enc = _encode_config(a)
    prototypes = tuple(parse_prompts(a.prototypes)) if a.prototypes else ()
    ccfg = ClusterConfig(
        method=a.method,
        k=a.k,
        linkage=a.linkage,
        min_cluster_size=a.min_cluster_size,
        min_samples=a.min_samples,
        reducer=a.reducer,
        assign_noise=a.assign_noise,
        n_init=a.n_init,
        prototypes=prototypes,
        threshold=a.threshold,
        discover_rest=a.discover_rest,
        seed=a.seed,
        representation=a.representation,
        questions=tuple(a.question),
        naming=a.naming,
        options={
            k: v
            for k, v in (
                ("captioner", a.captioner),
                ("nouns", a.nouns),
                ("naming_words", tuple(parse_prompts(a.naming_words)) if a.naming_words else None),
            )
            if v and k in option_names(a.representation)  # --captioner also captions for naming
        },
    )
    if _out_exists(a):
        return 2
    col = scan(a.folder, cache_dir=a.cache_dir, captions=a.captions)
    captioner = _captioner(a)
    emb = embed(
        col,
        enc,
        captioner=captioner,
        on_progress=tqdm_progress("embedding"),
        on_caption_progress=tqdm_progress("captioning") if captioner is not None else None,
    )
    if emb.fallback_note:
        _err(f"note: {emb.fallback_note}")
    _print_skipped(emb.collection)
    cl = cluster_embedded(emb, ccfg, cache_dir=enc.resolved_cache_dir)
    _out(
        f"{emb.n} images → {len(set(cl.labels.tolist()) - {-1})} clusters ({a.method}, model {emb.model_id})"
    )
    counts = {int(c): int((cl.labels == c).sum()) for c in sorted(set(cl.labels.tolist()))}
    for c, n in counts.items():
        words = ", ".join(cl.keywords.get(c, [])[:4])
        drift = "  (members drifted from this prompt)" if c in (cl.info.get("drifted") or []) else ""
        _out(f"  {c:>4}  {n:>6}  {cl.names.get(c, '')}" + (f"  · {words}" if words else "") + drift)
    _out("scores: " + ", ".join(f"{k} {_fmt(v)}" for k, v in cl.metrics.items()))
    short = short_of_k(a, cl.labels)
    if short:
        _err(f"note: {short}")
    for key, label in INFO_LINES.items():  # the details a user acts on; the rest is in the provenance
        value = cl.info.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            _out(f"{label}: {_fmt(value)}")
    _print_prompt_ranking(cl.info)
    for c, nouns in (cl.info.get("centre_nouns") or {}).items():
        _out(f"  centre {c:>3}: {', '.join(nouns)}")
    for r in cl.info.get("rounds") or []:
        _out(
            f"  round {r['round']}: {r['confident']:.0%} confident, {r['changed']} images changed cluster, "
            f"objective {r['objective_first']:.3f} → {r['objective_last']:.3f}"
        )
    if a.out is not None:
        from .export import build_provenance, write_provenance, write_table

        df = to_dataframe(emb, cl)
        write_table(df, a.out, overwrite=a.overwrite)
        record = build_provenance(emb, cl, requested_model=enc.model, device=enc.device)
        prov = write_provenance(a.out, record)  # <name>.provenance.json beside the table, as the app names it
        _out(f"wrote {len(df)} rows to {a.out} (provenance: {prov.name})")
    return 0


def _embed_folder(a: argparse.Namespace):
    """``scan`` + ``embed`` through the cache, as ``cluster`` does (notes and skipped files on stderr)."""
    from .pipeline import embed, scan

    col = scan(a.folder, cache_dir=a.cache_dir, captions=a.captions)
    emb = embed(col, _encode_config(a), on_progress=tqdm_progress("embedding"))
    if emb.fallback_note:
        _err(f"note: {emb.fallback_note}")
    _print_skipped(emb.collection)
    return emb


def _write_out(a: argparse.Namespace, df) -> None:
    if a.out is not None:
        from .export import write_table

        write_table(df, a.out, overwrite=a.overwrite)
        _out(f"wrote {len(df)} rows to {a.out}")


def _out_exists(a: argparse.Namespace) -> bool:
    """Check ``--out`` before any work: a refused name or an existing file stops the run here."""
    if a.out is None:
        return False
    from .export import TABLE_SUFFIXES

    if a.out.suffix.lower() not in TABLE_SUFFIXES:
        _err(f"error: --out {a.out.name}: the file name must end in {' or '.join(TABLE_SUFFIXES)}")
        return True
    if a.out.exists() and not a.overwrite:
        _err(f"error: {a.out} exists; pass --overwrite to replace it")
        return True
    return False


def cmd_search(a: argparse.Namespace) -> int:
    """``search``: rank the folder's images by a text or an example image."""
    from .errors import ConfigError
    from .search import search_images

    if (a.query is None) == (a.image is None):
        raise ConfigError('give exactly one query: a text ("a red car") or --image PATH')
    if a.top < 1:
        raise ConfigError(f"--top must be ≥ 1, got {a.top}")
    if _out_exists(a):
        return 2
    emb = _embed_folder(a)
    image = None
    if a.image is not None:  # one of the folder's own images: "more like this" from its cached vector
        relpaths = emb.collection.items["relpath"].tolist()
        try:
            own = a.image.resolve().relative_to(Path(emb.collection.root).resolve()).as_posix()
        except (OSError, ValueError):
            own = None
        image = relpaths.index(own) if own in relpaths else str(a.image)
    df = search_images(emb, text=a.query, image=image, top=a.top)
    _out(f"top {len(df)} of {emb.n} images (model {emb.model_id}):")
    for row in df.itertuples():
        _out(f"  {row.rank:>4}  {row.score:.3f}  {row.path}")
    _write_out(a, df)
    return 0


def cmd_duplicates(a: argparse.Namespace) -> int:
    """``duplicates``: exact and near-duplicate groups."""
    from .curate import duplicates

    if _out_exists(a):
        return 2
    emb = _embed_folder(a)
    df = duplicates(emb, threshold=a.threshold)
    n_groups = df["group"].nunique()
    _out(f"{n_groups} duplicate group(s), {len(df) - n_groups} image(s) to review among {emb.n}:")
    for row in df.head(60).itertuples():
        mark = "keep" if row.keep else row.kind
        _out(f"  {row.group:>4}  {mark:<5}  {row.similarity:.3f}  {row.path}")
    if len(df) > 60:
        _out(f"  … and {len(df) - 60} more rows")
    _write_out(a, df)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command in ("embed", "cluster"):  # the commands that may load captioners and sentence models
        quiet_model_loading()
    handlers = {"scan": cmd_scan, "embed": cmd_embed, "cluster": cmd_cluster}
    handlers.update(search=cmd_search, duplicates=cmd_duplicates)
    handler = handlers[args.command]
    try:
        with _warnings_as_lines():
            return handler(args)
    except VlexploreError as exc:
        _err(error_line(exc))
        return 2
    except OSError as exc:  # e.g. --out in a read-only or full folder: one line, not a traceback
        _err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted; finished batches are cached and the next run resumes")
        return 130
