"""First-run cost of the naming vocabulary with a CLIP text tower.

Open_clip's full 77-token context against the context cut after the last end-of-text token
(``vlexplore.models.openclip.encode_text_short``).

ViT-B-32 with random weights (the same compute as trained ones; nothing is downloaded), 256 nouns of the
bank in the naming template, extrapolated to the whole bank (WordNet + ImageNet). Once embedded, a
vocabulary is cached on disk per model id and template set, so only the first run pays::

    python bench/vocab_cost.py     # writes bench/results/vocab_cost.json
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    import torch

    from vlexplore.models.openclip import OpenClipEncoder, encode_text_short
    from vlexplore.naming import NAMING_TEMPLATES
    from vlexplore.nouns import vocabulary

    enc = OpenClipEncoder("ViT-B-32", None, random_init=True, device="cpu")
    words = vocabulary(None, "wordnet+imagenet")
    texts = [NAMING_TEMPLATES[0].format(w) for w in words[:256]]
    tokens = enc._tokenizer(texts)
    with torch.inference_mode():
        t = time.perf_counter()
        full = enc._model.encode_text(tokens)
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        cut = encode_text_short(enc._model, tokens)
        t_cut = time.perf_counter() - t
    n_tok = int(tokens.argmax(-1).max()) + 1
    res = {
        "model": "ViT-B-32 text tower (random weights)",
        "n_texts": len(texts),
        "tokens": {"full": int(tokens.shape[1]), "cut": n_tok},
        "seconds": {"full": round(t_full, 2), "cut": round(t_cut, 2)},
        "speedup": round(t_full / t_cut, 1),
        "max_abs_difference": float((full - cut).abs().max()),
        "bank_words": len(words),
        "bank_seconds_extrapolated": {
            "full": round(t_full / 256 * len(words)),
            "cut": round(t_cut / 256 * len(words)),
        },
        "machine": f"{platform.machine()}, Python {platform.python_version()}, 2 shared cores (busy), CPU only",
    }
    out = ROOT / "bench" / "results" / "vocab_cost.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
