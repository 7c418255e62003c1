"""Learned cluster centres on frozen features (the training step of Ma et al. 2026's semantic centres).

One centre per cluster and a shared offset, trained with full-batch Adam on confident pseudo-labels,
a balance term and an optional pull towards the starting centres; deterministic for given inputs.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

SMALL_PROBLEM = 2_000_000  #: below this many feature values (n × d) the centres train on one torch thread


def train_centres(
    Z: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    init: np.ndarray,
    *,
    anchor_to: np.ndarray | None = None,
    temperature: float = 0.05,
    balance: float = 1.0,
    anchor: float = 0.0,
    epochs: int = 100,
    lr: float = 0.01,
) -> tuple[np.ndarray, list[float]]:
    """Train one centre per cluster on confident pseudo-labels; the features stay frozen.

    The parameters are the ``K`` centres and one shared offset added to all of them (the
    embedding-space analogue of CoOp's shared learnable context). Objective, minimised with
    full-batch Adam (no sampling, so a run is deterministic)::

        CE(cos(z_i, c) / T, y_i) over confident i
        + balance · (Σ_k p̄_k log p̄_k + log K)     (p̄ = mean prediction over all images; 0 when uniform)
        + anchor · mean_k ‖w_k − w_k⁰‖²             (optional pull towards the initialisation)

    Args:
        Z: ``(n, d)`` unit rows.
        labels: ``int (n,)`` in ``0..K-1``.
        mask: ``bool (n,)`` confident rows.
        init: ``(K, d)`` starting centres.
        anchor_to: ``(K, d)`` the anchor (default ``init``).
        temperature: the softmax temperature ``T``; see :class:`LanguageOptions`.
        balance: weight of the balance term.
        anchor: weight of the pull towards ``anchor_to``.
        epochs: full-batch Adam steps.
        lr: Adam's learning rate.

    Returns:
        ``centres`` float32 ``(K, d)`` unit rows, and the objective before each step plus after the last
        (``epochs + 1`` values).

    Raises:
        ConfigError: no confident rows, or labels outside ``0..K-1``.
    """
    import torch
    import torch.nn.functional as F

    K = len(init)
    mask = np.asarray(mask, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    if not mask.any():
        raise ConfigError(
            "no image is confident, so there is nothing to train the centres on; lower option agree"
        )
    if labels[mask].min() < 0 or labels[mask].max() >= K:
        raise ConfigError(
            f"pseudo-labels must lie in 0..{K - 1}, got {labels[mask].min()}..{labels[mask].max()}"
        )
    z = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
    w0 = torch.from_numpy(
        np.ascontiguousarray(anchor_to if anchor_to is not None else init, dtype=np.float32)
    )
    W = torch.nn.Parameter(torch.from_numpy(np.array(init, dtype=np.float32)))
    offset = torch.nn.Parameter(torch.zeros(z.shape[1]))
    opt = torch.optim.Adam([W, offset], lr=lr)
    m = torch.from_numpy(mask)
    y = torch.from_numpy(labels[mask])
    log_k = float(np.log(K))

    def objective() -> torch.Tensor:
        logits = z @ F.normalize(W + offset, dim=1).T / temperature
        p_mean = logits.softmax(dim=1).mean(dim=0)
        neg_entropy = (p_mean * p_mean.clamp_min(1e-12).log()).sum() + log_k
        pull = ((W - w0) ** 2).sum(dim=1).mean()
        return F.cross_entropy(logits[m], y) + balance * neg_entropy + anchor * pull

    losses = []
    threads = torch.get_num_threads()
    if Z.size < SMALL_PROBLEM:  # thread start-up and spinning cost more than the work (×100 on a busy CPU)
        torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            loss = objective()
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            losses.append(float(objective()))
            centres = F.normalize(W + offset, dim=1).numpy().astype(np.float32)
    finally:
        torch.set_num_threads(threads)
    return centres, losses
