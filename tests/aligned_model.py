"""A tiny open_clip model with real image–text alignment, trained in seconds on generated shapes.

Images are coloured shapes (red/green/blue × circle/square/triangle) at random positions and sizes
on a random grey background; texts describe them ("a red circle", "a photo of a blue shape.", "green").
A small ViT and a small text transformer are trained from scratch with the CLIP contrastive loss
(symmetric cross-entropy over image–text similarities; every text that fits an image is a positive,
so "red" is the right answer for every red shape in a batch).

The result is saved the two ways a user brings their own weights:

* a checkpoint file (``state_dict``) plus the architecture's config registered with open_clip
  (``open_clip.add_model_config``), loadable as ``openclip:ARCH:/path/ckpt.pt``;
* an hf-hub style directory (``open_clip_config.json`` + ``open_clip_model.safetensors``),
  loadable as the directory's path or ``local-dir:/path``.

Nothing here reaches the network; everything is seeded and deterministic.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ARCH = "vx-aligned-tiny"
IMAGE_SIZE = 32
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 185, 45),
    "blue": (40, 50, 215),
}
SHAPES = ("circle", "square", "triangle")
MODEL_CFG = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": IMAGE_SIZE,
        "layers": 2,
        "width": 64,
        "patch_size": 8,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 64,
        "heads": 2,
        "layers": 2,
        "mlp_ratio": 2.0,
    },
}
#: Text templates seen in training: plain, with an article, and the prompt templates vlexplore puts
#: around prototypes (so "red" as a prototype lands where training put red shapes).
TEMPLATES = (
    "{}",
    "a {}",
    "a {}.",
    "a photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a cropped photo of a {}.",
)


def shape_image(colour: str, shape: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """One ``size × size`` RGB image: a ``colour`` ``shape`` of random size and place on a random grey."""
    grey = int(rng.integers(110, 256))
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    fill = tuple(int(np.clip(v + rng.integers(-25, 26), 0, 255)) for v in COLOURS[colour])
    side = int(rng.integers(size * 3 // 8, size * 3 // 4 + 1))
    x0 = int(rng.integers(0, size - side + 1))
    y0 = int(rng.integers(0, size - side + 1))
    draw = ImageDraw.Draw(image)
    box = (x0, y0, x0 + side - 1, y0 + side - 1)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(x0 + side / 2, y0), (x0, y0 + side - 1), (x0 + side - 1, y0 + side - 1)], fill=fill)
    return image


def sample_shapes(n: int, seed: int) -> list[tuple[Image.Image, str, str]]:
    """``n`` images with their (colour, shape), classes cycling so every class has ``n // 9`` or so."""
    rng = np.random.default_rng(seed)
    classes = [(c, s) for c in COLOURS for s in SHAPES]
    out = []
    for i in range(n):
        c, s = classes[i % len(classes)]
        out.append((shape_image(c, s, rng), c, s))
    return out


def write_shape_folder(root: Path, n_per_colour: int, seed: int) -> dict[str, str]:
    """Held-out images in colour sub-folders (``root/red/…png``); returns ``relpath → colour``."""
    labels = {}
    for i, (image, c, s) in enumerate(sample_shapes(3 * n_per_colour, seed)):
        rel = f"{c}/{s}_{i:04d}.png"
        (root / c).mkdir(parents=True, exist_ok=True)
        image.save(root / rel)
        labels[rel] = c
    return labels


def _text_pool() -> tuple[list[str], list[tuple[str | None, str | None]]]:
    """Every training text and what it says: ``(colour or None, shape or None)``."""
    texts, meaning = [], []
    for c in COLOURS:
        for s in SHAPES:
            for t in TEMPLATES:
                texts.append(t.format(f"{c} {s}"))
                meaning.append((c, s))
        for t in TEMPLATES:
            texts.append(t.format(f"{c} shape"))
            meaning.append((c, None))
            texts.append(t.format(c))
            meaning.append((c, None))
    for s in SHAPES:
        for t in TEMPLATES:
            texts.append(t.format(s))
            meaning.append((None, s))
    return texts, meaning


@dataclass
class TrainedModel:
    """Where the trained model was saved and how training went."""

    arch: str
    config_path: Path  # top-level model config, registered with open_clip as ``arch``
    checkpoint: Path  # state_dict file
    model_dir: Path  # hf-hub style directory
    seconds: float
    steps: int
    final_loss: float
    train_accuracy: float  # colour zero-shot accuracy on the last batch, with the texts "red" "green" "blue"


def register_config(directory: Path, arch: str = ARCH) -> Path:
    """Write the architecture's config as ``directory/ARCH.json`` and register it with open_clip."""
    import open_clip

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{arch}.json"
    path.write_text(json.dumps(MODEL_CFG, indent=1))
    if arch not in open_clip.list_models():
        open_clip.add_model_config(path)
    return path


def build_model(seed: int = 0, arch: str = ARCH):
    """The untrained model with its (eval) preprocess and tokenizer, seeded."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device="cpu")
    return model, preprocess, open_clip.get_tokenizer(arch)


def save_model(model, out: Path, config_path: Path, name: str = "aligned.pt") -> tuple[Path, Path]:
    """Save ``model`` as a checkpoint file and as an hf-hub style directory; returns both paths."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    ckpt = out / name
    torch.save(state, ckpt)
    model_dir = out / "hub-style"
    model_dir.mkdir(exist_ok=True)
    cfg = json.loads(config_path.read_text())
    preprocess_cfg = {
        "mean": list(model.visual.preprocess_cfg["mean"]),
        "std": list(model.visual.preprocess_cfg["std"]),
    }
    (model_dir / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess_cfg})
    )
    save_file(state, str(model_dir / "open_clip_model.safetensors"))
    return ckpt, model_dir


def train_aligned(
    out: Path,
    *,
    seed: int = 0,
    steps: int = 300,
    batch_size: int = 108,
    pool_size: int = 2700,
    base_lr: float = 2e-3,
) -> TrainedModel:
    """Train the tiny model for ``steps`` steps (about 12 s on one core) and save it under ``out``."""
    import torch
    import torch.nn.functional as F

    config_path = register_config(out)
    model, preprocess, tokenizer = build_model(seed)
    model.train()
    # fixed random token embeddings are distinct enough; not training the 49408-row table saves most of each step
    model.token_embedding.weight.requires_grad_(False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and much faster on a busy machine
    pool = sample_shapes(pool_size, seed + 1)
    images = torch.stack([preprocess(im) for im, _, _ in pool])
    img_colour = np.array([list(COLOURS).index(c) for _, c, _ in pool])
    img_shape = np.array([SHAPES.index(s) for _, _, s in pool])
    texts, meaning = _text_pool()
    tokens = tokenizer(texts)
    txt_colour = np.array([-1 if c is None else list(COLOURS).index(c) for c, _ in meaning])
    txt_shape = np.array([-1 if s is None else SHAPES.index(s) for _, s in meaning])
    colour_probe = tokenizer(list(COLOURS))

    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.01)
    start = time.perf_counter()
    step, loss_value, acc = 0, float("nan"), 0.0
    while step < steps:
        lr = base_lr * min(1.0, (step + 1) / 20)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.choice(len(images), batch_size, replace=False)
        # each image gets a random text that fits it
        t_idx = []
        for i in idx:
            fits = np.flatnonzero(
                ((txt_colour == img_colour[i]) | (txt_colour < 0))
                & ((txt_shape == img_shape[i]) | (txt_shape < 0))
            )
            t_idx.append(int(rng.choice(fits)))
        t_idx = np.array(t_idx)
        ok_c = (txt_colour[t_idx][:, None] < 0) | (txt_colour[t_idx][:, None] == img_colour[idx][None, :])
        ok_s = (txt_shape[t_idx][:, None] < 0) | (txt_shape[t_idx][:, None] == img_shape[idx][None, :])
        fits = torch.from_numpy((ok_c & ok_s).astype(np.float32))  # (texts, images)
        img = F.normalize(model.encode_image(images[idx]), dim=-1)
        txt = F.normalize(model.encode_text(tokens[t_idx]), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * txt @ img.T
        loss = 0.5 * (
            -(F.log_softmax(logits, 1) * fits / fits.sum(1, keepdim=True)).sum(1).mean()
            - (F.log_softmax(logits.T, 1) * fits.T / fits.T.sum(1, keepdim=True)).sum(1).mean()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        step += 1
    elapsed = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        probe = F.normalize(model.encode_text(colour_probe), dim=-1)
        acc = float(((img.detach() @ probe.T).argmax(1).numpy() == img_colour[idx]).mean())
    torch.set_num_threads(threads)
    ckpt, model_dir = save_model(model, out, config_path)
    return TrainedModel(ARCH, config_path, ckpt, model_dir, elapsed, step, loss_value, acc)


if __name__ == "__main__":  # python tests/aligned_model.py: train once and print how it went
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print(train_aligned(Path(d), steps=int(sys.argv[1]) if len(sys.argv) > 1 else 200))
