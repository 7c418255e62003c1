"""A randomly initialised open_clip model saved as a local hub-style directory, for the scale benches.

    python bench/random_clip.py                       # -> bench/data/random-clip-512/
    python bench/random_clip.py --out DIR --embed-dim 768

The app and the CLI load it exactly as a user's own checkpoint (``--model DIR``,
``VLEXPLORE_MODEL=DIR``, or "other" on the Load page). Its towers are tiny (32-pixel ViT, two layers)
so 70,000 images embed in minutes on two cores, but its embeddings have the width of a real CLIP
(512 by default): everything after the encoder — cache reads, clustering, naming, the map, the
app's memory — costs what it costs with ViT-B/32. Nothing here reaches the network.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def model_config(embed_dim: int) -> dict:
    """A tiny ViT + text transformer with ``embed_dim``-wide outputs (CLIP's tokenizer and vocabulary)."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }


def write_random_clip(out: Path, *, embed_dim: int = 512, seed: int = 0) -> Path:
    """Write ``out/open_clip_config.json`` and ``out/open_clip_model.safetensors``; returns ``out``."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = model_config(embed_dim)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    out.mkdir(parents=True, exist_ok=True)
    preprocess = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess}))
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=BENCH / "data" / "random-clip-512")
    ap.add_argument("--embed-dim", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(write_random_clip(a.out, embed_dim=a.embed_dim, seed=a.seed))


if __name__ == "__main__":
    main()
