"""Plotly figures of the app (pure: arrays in, figures out; no Streamlit).

Candidates for ``vlexplore/plots.py`` once that module exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

NOISE_COLOUR = "#b8b8b8"
PALETTE = list(qualitative.T10) + list(qualitative.Alphabet) + list(qualitative.Dark24)
MAX_TRACES = 40  # clusters beyond this share one trace (a legend of hundreds of entries helps no one)
MAX_POINTS = 200_000  # points drawn on the map; beyond it a seeded random sample is drawn
MAX_LABELS = 25  # clusters named on the map itself (at their median point)
MAX_HOVER_POINTS = 100_000  # above this, hover shows the cluster only (hover texts cost bandwidth)


def cluster_colours(order: Sequence[int]) -> dict[int, str]:
    """Cluster id → colour, in display order; noise (``-1``) grey."""
    out: dict[int, str] = {}
    k = 0
    for cid in order:
        if cid < 0:
            out[cid] = NOISE_COLOUR
        else:
            out[cid] = PALETTE[k % len(PALETTE)]
            k += 1
    return out


def _marker_size(n: int) -> float:
    if n < 1_000:
        return 8
    if n < 10_000:
        return 5
    if n < 100_000:
        return 3
    return 2


@dataclass
class MapFigure:
    """A map and how to turn a selection event back into image indices.

    Attributes:
        figure: the plotly figure (one ``Scattergl`` trace per cluster).
        members: per trace, the image indices of its points, in point order.
        n_shown: points drawn (all of them unless more than ``MAX_POINTS``).
    """

    figure: go.Figure
    members: list[np.ndarray]
    n_shown: int

    def indices(self, points: Sequence[Mapping]) -> np.ndarray:
        """Image indices of plotly selection ``points`` (dicts with ``curve_number`` and ``point_index``)."""
        out = []
        for p in points:
            curve, idx = p.get("curve_number"), p.get("point_index")
            if curve is None or idx is None or not 0 <= curve < len(self.members):
                continue
            members = self.members[curve]
            if 0 <= idx < len(members):
                out.append(int(members[idx]))
        return np.unique(np.asarray(out, dtype=np.int64))


def scatter_map(
    coords: np.ndarray,
    labels: np.ndarray,
    names: Mapping[int, str],
    order: Sequence[int],
    colours: Mapping[int, str],
    *,
    hover: Sequence[str] | None = None,
    max_points: int = MAX_POINTS,
    seed: int = 0,
    height: int = 640,
) -> MapFigure:
    """The 2-d map: one ``go.Scattergl`` trace per cluster, named in the legend.

    Args:
        coords: ``(n, 2)`` map coordinates; labels: ``(n,)`` cluster ids.
        names: cluster id → display name; order: ids in legend order; colours: id → colour.
        hover: one text per image (path, caption) shown on hover, or ``None``.
        max_points: draw a seeded random sample of this many points when there are more.
    """
    coords = np.asarray(coords, dtype=np.float32)
    labels = np.asarray(labels)
    n = len(labels)
    shown = np.arange(n)
    if n > max_points:
        shown = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    use_hover = hover is not None and len(shown) <= MAX_HOVER_POINTS
    size = _marker_size(len(shown))
    fig = go.Figure()
    members: list[np.ndarray] = []
    lab_shown = labels[shown]
    own = [c for c in order if c >= 0][:MAX_TRACES]
    rest = [c for c in order if c >= 0 and c not in set(own)]
    groups: list[tuple[str, str, np.ndarray]] = []
    for cid in own:
        groups.append((names.get(cid, f"cluster {cid}"), colours.get(cid, "#444"), shown[lab_shown == cid]))
    if rest:
        groups.append((f"{len(rest)} smaller clusters", "#7f7f7f", shown[np.isin(lab_shown, rest)]))
    if -1 in order:
        groups.append((names.get(-1, "other"), NOISE_COLOUR, shown[lab_shown == -1]))
    for name, colour, idx in groups:
        trace = go.Scattergl(
            x=coords[idx, 0],
            y=coords[idx, 1],
            mode="markers",
            name=f"{name} ({len(idx):,})",
            marker={"size": size, "color": colour, "opacity": 0.85, "line": {"width": 0}},
            hovertemplate=(
                f"<b>{name}</b><br>%{{text}}<extra></extra>" if use_hover else f"<b>{name}</b><extra></extra>"
            ),
            text=[hover[i] for i in idx] if use_hover else None,
        )
        fig.add_trace(trace)
        members.append(idx)
    annotations = []
    for cid in own[:MAX_LABELS]:
        idx = np.flatnonzero(labels == cid)
        if len(idx) == 0:
            continue
        x, y = np.median(coords[idx], axis=0)
        text = names.get(cid, f"cluster {cid}")
        annotations.append(
            {
                "x": float(x),
                "y": float(y),
                "text": text if len(text) <= 28 else text[:27] + "…",
                "showarrow": False,
                "font": {"size": 12, "color": "#1f2430"},
                "bgcolor": "rgba(255,255,255,0.75)",
                "borderpad": 2,
            }
        )
    fig.update_layout(
        height=height,
        margin={"l": 8, "r": 8, "t": 40, "b": 8},
        dragmode="lasso",
        annotations=annotations,
        legend={"itemsizing": "constant", "title": {"text": "clusters"}, "yanchor": "top", "y": 1},
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1},
        plot_bgcolor="white",
        hoverlabel={"align": "left"},
        uirevision="map",
    )
    return MapFigure(fig, members, len(shown))


def confusion_heatmap(table: pd.DataFrame, cluster_names: Mapping[int, str] | None = None) -> go.Figure:
    """Heatmap of a confusion table (rows: folders, columns: clusters), shaded by share of each folder.

    Clusters are ordered by the folder they hold most of, so a good clustering shows a diagonal.
    """
    t = table.copy()
    if len(t.columns):
        best_row = {c: int(np.argmax(t[c].to_numpy())) for c in t.columns}
        cols = sorted(
            t.columns, key=lambda c: (c == -1 or str(c) in ("-1", "other", "noise"), best_row[c], str(c))
        )
        t = t[cols]
    counts = t.to_numpy(dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = cluster_names or {}
    x = [names.get(c, str(c)) if not isinstance(c, str) else c for c in t.columns]
    x = _unique([lbl if len(lbl) <= 24 else lbl[:23] + "…" for lbl in x])
    y = [str(r) for r in t.index]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=x,
            y=y,
            text=counts.astype(int),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "share of folder"}},
            hovertemplate="folder %{y}<br>cluster %{x}<br>%{text} images (%{z:.0%} of the folder)<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(320, 34 * len(y) + 140),
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        xaxis={"title": {"text": "cluster"}, "tickangle": -35, "side": "bottom"},
        yaxis={"title": {"text": "folder"}, "autorange": "reversed"},
    )
    return fig


def _unique(labels: list[str]) -> list[str]:
    """Heatmap axes need distinct labels: repeated names get ``#id`` suffixes."""
    seen: dict[str, int] = {}
    out = []
    for lbl in labels:
        seen[lbl] = seen.get(lbl, 0) + 1
        out.append(lbl if seen[lbl] == 1 else f"{lbl} #{seen[lbl]}")
    return out


def ami_figure(ami, prompts):
    """Heatmap of the adjusted mutual information between the prompts' clusterings."""
    import plotly.graph_objects as go

    labels = [p if len(p) <= 40 else p[:39] + "…" for p in prompts]
    fig = go.Figure(
        go.Heatmap(z=ami, x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues", texttemplate="%{z:.2f}")
    )
    fig.update_layout(height=120 + 40 * len(prompts), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title="AMI between the prompts' clusterings")
    return fig
