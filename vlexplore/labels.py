"""The default names of clusters: ``cluster <id>`` for a cluster without a name, ``other`` / ``noise`` for ``-1``.

One rule for the library, the exports and the app, so a cluster is called the same everywhere.
"""

from __future__ import annotations

#: The id of the images in no cluster (noise / other).
NOISE = -1


def noise_name(method: str | None = None) -> str:
    """What ``-1`` is called: ``"noise"`` for HDBSCAN (it finds noise), ``"other"`` otherwise."""
    return "noise" if method == "hdbscan" else "other"


def default_name(cid: int, *, noise: str = "other") -> str:
    """The name of cluster ``cid`` when nobody named it: ``"cluster <id>"``, or ``noise`` for ``-1``."""
    cid = int(cid)
    return noise if cid == NOISE else f"cluster {cid}"
