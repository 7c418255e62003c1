"""The command line's arguments: one parser for ``python -m vlexplore`` and its sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import CLUSTER_METHODS
from .represent import REPRESENTATIONS


def _add_captions_arg(p) -> None:
    p.add_argument(
        "--captions",
        type=Path,
        default=None,
        metavar="FILE",
        help="captions you already have: a .csv (columns path, caption) or .jsonl file, paths relative to "
        "FOLDER; wins over the folder's own captions.csv/.jsonl and photo.txt sidecars (read automatically)",
    )


def _add_encode_args(p: argparse.ArgumentParser) -> None:
    _add_captions_arg(p)
    g = p.add_argument_group("embedding")
    g.add_argument(
        "--model",
        default="bundled",
        help="encoder: 'bundled' (offline, default), an open_clip 'ARCH/TAG' such as ViT-B-32/openai, "
        "'hf-hub:org/name' (SigLIP and newer models), 'openclip:ARCH:/path/ckpt.pt', a checkpoint file, or a "
        "model directory (open_clip_config.json + weights); a misspelt name exits 2 with the closest names",
    )
    g.add_argument(
        "--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps"
    )
    g.add_argument(
        "--batch-size", type=int, default=0, help="images per forward pass (0 = chosen for the device)"
    )
    g.add_argument("--workers", type=int, default=2, help="image-decoding threads running beside the model")
    g.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where embeddings, captions and projections are kept (default: the user cache dir, "
        "or $VLEXPLORE_CACHE_DIR)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m vlexplore`` argument parser and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m vlexplore",
        description="Explore an image folder with vision-language models: embed, cluster, name, map, export.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("scan", help="list readable images and the files that will be skipped (and why)")
    p.add_argument("folder", type=Path, help="image folder (scanned recursively)")
    _add_captions_arg(p)
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the cache that remembers unchanged files (default: the user cache dir, or $VLEXPLORE_CACHE_DIR)",
    )

    p = sub.add_parser(
        "embed",
        help="compute and cache image embeddings (resumable), here or on a Ray cluster",
        description="Embeds every image of FOLDER into the cache that 'cluster' and the app read. "
        "--engine ray runs the encoder in Ray Data actors (a local Ray runtime, or the cluster at --address); "
        "the driver writes the same cache, so the results open anywhere the folder and cache are.",
    )
    p.add_argument("folder", type=Path, help="image folder (scanned recursively)")
    _add_encode_args(p)
    p.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="FILE.parquet",
        help="also write one Parquet file: path, fingerprint, folder label, caption and a vector "
        "column per view (reads in pandas, DuckDB, Ray)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --export file")
    g = p.add_argument_group('distributed (--engine ray; needs: pip install "ray[data]")')
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data actors",
    )
    g.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: start a local runtime)",
    )
    g.add_argument(
        "--actors", type=int, default=None, help="encoder actors (default: one per GPU, else one per 4 CPUs)"
    )
    g.add_argument(
        "--gpus-per-actor",
        type=float,
        default=None,
        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0)",
    )
    p.add_argument(
        "--captioner",
        default=None,
        help="also caption every image into the cache (blip-base, blip-large, blip2, git-base, a hub id "
        "or a local directory); with --engine ray the captioner runs in Ray actors too",
    )

    p = sub.add_parser(
        "cluster",
        help="embed (cached), cluster, name clusters, project to 2-d and write a labelled CSV",
        description="Runs the whole pipeline. Prints ACC/NMI/ARI when the images sit in class sub-folders "
        "(folder name = label) and label-free scores otherwise.",
    )
    p.add_argument("folder", type=Path, help="image folder (scanned recursively)")
    _add_encode_args(p)
    g = p.add_argument_group("clustering")
    g.add_argument(
        "--method", choices=CLUSTER_METHODS, default="kmeans", help="clustering method (default kmeans)"
    )
    g.add_argument(
        "--k", type=int, default=None, help="number of clusters (default: suggested from the data)"
    )
    g.add_argument(
        "--prototypes",
        default="",
        help='text prototypes, comma- or newline-separated, e.g. "dog, cat, car" (with --method prototypes they '
        "are the centroids; with kmeans they seed it)",
    )
    g.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="prototypes: images less similar than this (cosine) to every prototype go to 'other'",
    )
    g.add_argument(
        "--discover-rest",
        action="store_true",
        help="prototypes: cluster the 'other' images with k-means (--k of them)",
    )
    g.add_argument(
        "--representation",
        choices=REPRESENTATIONS,
        default="image",
        help="what is clustered: the image embedding (default); captions as TF-IDF or sentence embeddings, "
        "caption keywords, or answers to --question (text-guided, Stephan et al. 2024); nouns (TAC), "
        "image-noun relations or learned semantic centres (language-assisted); pair: image and caption embeddings together (captions from --captions, photo.txt sidecars or a captions.csv in the folder)",
    )
    g.add_argument(
        "--question",
        "--prompt",
        dest="question",
        action="append",
        default=[],
        metavar="TEXT",
        help='prompt-guided clustering: a question for the captioner, e.g. "What is the main object?" '
        "(repeatable; each gives a clustering, the best by k-means loss is kept)",
    )
    g.add_argument(
        "--captioner",
        default=None,
        help="captions for names, the export's caption column and text-guided representations: "
        "blip-base, blip-large, blip2 (BLIP-2 OPT-2.7b), git-base, a hub id or a local model directory "
        "(default: none; the bundled model gives its label captions)",
    )
    g.add_argument(
        "--nouns",
        default=None,
        metavar="TEXT",
        help="nouns/relations/centres: your own candidate nouns, comma-separated "
        "(default: about 8,000 WordNet nouns plus the ImageNet class names)",
    )
    g.add_argument(
        "--naming",
        choices=("auto", "vocabulary", "captions"),
        default="auto",
        help="where cluster names come from: words from a vocabulary in the encoder's joint space, or the "
        "captions' counted keywords (auto: the vocabulary unless the representation clustered on texts)",
    )
    g.add_argument(
        "--naming-words",
        default=None,
        metavar="TEXT",
        help="your own words to name clusters with, comma-separated",
    )
    g.add_argument("--linkage", choices=("ward", "average"), default="ward", help="agglomerative linkage")
    g.add_argument(
        "--min-cluster-size", type=int, default=None, help="HDBSCAN smallest cluster (default ~n/20)"
    )
    g.add_argument(
        "--min-samples", type=int, default=None, help="HDBSCAN density smoothing (default: min(size, 25))"
    )
    g.add_argument(
        "--reducer",
        choices=("umap", "pca"),
        default="umap",
        help="HDBSCAN runs on this reduction to 5 dimensions (UMAP: cosine, cached)",
    )
    g.add_argument(
        "--assign-noise",
        action="store_true",
        help="HDBSCAN: give each noise image the cluster of its nearest clustered image",
    )
    g.add_argument(
        "--n-init",
        type=int,
        default=None,
        help="k-means restarts (default: more for small folders, 5 from 20,000 images)",
    )
    g.add_argument("--seed", type=int, default=0, help="random seed for every stochastic step")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=None, help="write the labelled table here (.csv or .parquet)")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_search_parsers(sub)
    return parser


def _add_search_parsers(sub) -> None:
    """``search`` and ``duplicates``: embed (cached), then query or curate the folder."""
    p = sub.add_parser(
        "search",
        help="find the images most like a text or an image (the encoder's joint space)",
        description='Ranks the images of FOLDER by cosine similarity to QUERY (a text, e.g. "a red car") '
        "or to --image PATH (any image file; one of FOLDER's own images gives 'more like this', itself "
        "left out).",
    )
    p.add_argument("folder", type=Path, help="image folder (scanned recursively)")
    p.add_argument("query", nargs="?", default=None, help="what to look for, as text")
    p.add_argument("--image", type=Path, default=None, metavar="PATH", help="search by this image instead")
    p.add_argument("--top", type=int, default=20, help="how many results (default 20)")
    _add_encode_args(p)
    _add_out_args(p, "the results (path, rank, score)")

    p = sub.add_parser(
        "duplicates",
        help="groups of identical files and near-identical images",
        description="Identical files share a content key; near duplicates have image embeddings with "
        "cosine similarity of at least --threshold. The first member of each group (by path) is marked keep.",
    )
    p.add_argument("folder", type=Path, help="image folder (scanned recursively)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.88,
        help="cosine similarity for near duplicates (default 0.88: on resized, recompressed and cropped copies "
        "of real photos the bundled model finds 88%% of copy pairs at 95%% precision)",
    )
    _add_encode_args(p)
    _add_out_args(p, "the groups (path, group, kind, similarity, keep)")


def _add_out_args(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=None, help=f"write {what} here (.csv or .parquet)")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
