"""What the WebGL map draws, as typed arrays: positions in [-1, 1], a colour index per point, the palette.

Pure numpy (no Streamlit, no plotly): the data step of the Map page's WebGL scatter plot
(``ui/scatter.py``). Every point is kept, however many there are; the browser draws them all.

The wire format (:func:`encode`) is one ``bytes`` payload, so the points cross the websocket as
binary, never as JSON lists::

    b"VXM1"  uint32 header length  header (UTF-8 JSON)  zero padding to a multiple of 4
    x float32[n]  y float32[n]  category uint16[n] (+ 2 padding bytes when n is odd)  selection uint32[m]

All numbers are little-endian. The header holds ``n``, ``m``, the palette, the category names and
``version`` (a digest of the points, so the browser can tell a new map from a rerun of the same one).
A header with ``"points": false`` carries the selection only (the browser already holds those points).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAGIC = b"VXM1"
OTHER_COLOUR = "#7f7f7f"
MAX_CATEGORIES = 65_535  # uint16 codes


@dataclass
class MapPoints:
    """The map as the browser draws it.

    Attributes:
        x, y: ``(n,)`` float32 in [-1, 1]; the aspect ratio of the layout is kept (the longer side spans it).
        category: ``(n,)`` uint16, index into ``palette`` / ``names`` (one per cluster id in ``ids``).
        palette: colour (``#rrggbb``) per category; names: display name per category; ids: cluster id per category.
        version: digest of positions and categories.
    """

    x: np.ndarray
    y: np.ndarray
    category: np.ndarray
    palette: list[str]
    names: list[str]
    ids: list[int]
    version: str

    @property
    def n(self) -> int:
        """Number of points."""
        return len(self.x)


def normalise(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` coordinates → x, y float32 in [-1, 1], centred, the same scale on both axes.

    Non-finite coordinates go to the centre; a single point or a degenerate layout stays at 0.
    """
    c = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(c) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    finite = np.isfinite(c).all(axis=1)
    if not finite.any():
        return np.zeros(len(c), np.float32), np.zeros(len(c), np.float32)
    lo = c[finite].min(axis=0)
    hi = c[finite].max(axis=0)
    mid = (lo + hi) / 2
    half = float(np.max(hi - lo)) / 2
    scale = 1.0 / half if half > 0 else 0.0
    out = (c - mid) * scale
    out[~finite] = 0.0
    out = np.clip(out, -1.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(out[:, 0]), np.ascontiguousarray(out[:, 1])


def map_points(
    coords: np.ndarray,
    labels: np.ndarray,
    colours: Mapping[int, str],
    names: Mapping[int, str] | None = None,
    order: Sequence[int] | None = None,
) -> MapPoints:
    """Positions and colour codes of every point of the map.

    Args:
        coords: ``(n, 2)`` layout;
        labels: ``(n,)`` cluster ids (``-1`` noise).
        colours: cluster id → colour (the app's palette, e.g. ``cluster_colours``); ids missing from it are grey.
        names: cluster id → display name (``"cluster <id>"`` when missing).
        order: cluster ids in display order (default: sorted ids); ids of ``labels`` not in it follow.
    """
    labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
    coords = np.asarray(coords)
    if len(coords) != len(labels):
        raise ValueError(f"{len(coords)} coordinates but {len(labels)} labels")
    x, y = normalise(coords)
    present = np.unique(labels)
    ids = [int(c) for c in (order if order is not None else present)]
    seen = set(ids)
    ids += [int(c) for c in present if int(c) not in seen]
    if len(ids) > MAX_CATEGORIES:
        raise ValueError(f"{len(ids)} clusters: the map colours at most {MAX_CATEGORIES}")
    # cluster id → category code, through a sorted lookup (vectorised for millions of points)
    id_arr = np.asarray(ids, dtype=np.int64)
    sorter = np.argsort(id_arr, kind="stable")
    pos = np.searchsorted(id_arr, labels, sorter=sorter)
    category = sorter[np.clip(pos, 0, len(ids) - 1)].astype(np.uint16) if len(ids) else np.zeros(0, np.uint16)
    names = names or {}
    palette = [str(colours.get(c, OTHER_COLOUR)) for c in ids]
    shown_names = [str(names.get(c, f"cluster {c}" if c >= 0 else "noise")) for c in ids]
    h = hashlib.blake2b(digest_size=12)
    for arr in (x, y, category):
        h.update(arr.tobytes())
    h.update(json.dumps([palette, ids]).encode())
    return MapPoints(x, y, category, palette, shown_names, ids, h.hexdigest())


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def encode(
    points: MapPoints,
    selection: Sequence[int] | np.ndarray = (),
    *,
    with_points: bool = True,
    extra: Mapping | None = None,
) -> bytes:
    """The binary payload of the map (see the module docstring).

    ``with_points=False`` sends the header and selection only. ``extra`` adds JSON-serialisable keys to the
    header (e.g. point size).
    """
    sel = np.asarray(selection, dtype=np.int64).reshape(-1)
    sel = np.unique(sel[(sel >= 0) & (sel < points.n)]).astype("<u4")
    header = {
        "n": points.n,
        "m": len(sel),
        "points": bool(with_points),
        "version": points.version,
        "palette": points.palette,
        "names": points.names,
        "ids": points.ids,
        **(dict(extra) if extra else {}),
    }
    head = _pad4(json.dumps(header, separators=(",", ":")).encode())
    parts = [MAGIC, struct.pack("<I", len(head)), head]
    if with_points:
        parts += [
            points.x.astype("<f4").tobytes(),
            points.y.astype("<f4").tobytes(),
            _pad4(points.category.astype("<u2").tobytes()),
        ]
    parts.append(sel.tobytes())
    return b"".join(parts)


def decode(payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of :func:`encode` (for tests and tools): the header and the arrays it carries."""
    if payload[:4] != MAGIC:
        raise ValueError("not a map payload")
    (hlen,) = struct.unpack_from("<I", payload, 4)
    header = json.loads(payload[8 : 8 + hlen].rstrip(b"\0"))
    off = 8 + hlen
    n, m = header["n"], header["m"]
    out: dict[str, np.ndarray] = {}
    if header["points"]:
        out["x"] = np.frombuffer(payload, "<f4", n, off)
        off += 4 * n
        out["y"] = np.frombuffer(payload, "<f4", n, off)
        off += 4 * n
        out["category"] = np.frombuffer(payload, "<u2", n, off)
        off += 2 * n + (2 * n) % 4
    out["selection"] = np.frombuffer(payload, "<u4", m, off)
    return header, out


def decode_indices(value: object, n: int) -> np.ndarray:
    """Indices the browser sent back: a list of ints, or ``{"b64": base64 of little-endian uint32}``.

    Out-of-range indices are dropped; the result is sorted and unique (int64).
    """
    import base64

    if isinstance(value, Mapping) and isinstance(value.get("b64"), str):
        raw = base64.b64decode(value["b64"])
        arr = np.frombuffer(raw[: len(raw) // 4 * 4], "<u4").astype(np.int64)
    elif isinstance(value, (list, tuple)):
        arr = np.asarray([int(v) for v in value if isinstance(v, (int, float))], dtype=np.int64)
    else:
        arr = np.zeros(0, np.int64)
    arr = arr[(arr >= 0) & (arr < n)]
    return np.unique(arr)
