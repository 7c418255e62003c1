"""Heatmaps of a clustering: folder × cluster counts and the prompts' AMI (data, then render).

As in :mod:`vlexplore.plots`, a data function computes what is drawn with numpy only and a render
function makes the plotly figure; every user text is HTML-escaped (plotly renders a subset of HTML).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .labels import NOISE
from .plots import _cut, escape

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go


@dataclass
class HeatmapData:
    """A heatmap without plotly: ``z`` shades, ``counts`` written in the cells, escaped axis labels."""

    z: np.ndarray
    counts: np.ndarray
    x: list[str]
    y: list[str]


def _unique(labels: list[str]) -> list[str]:
    """Heatmap axes need distinct labels: repeated names get ``#id`` suffixes."""
    seen: dict[str, int] = {}
    out = []
    for lbl in labels:
        seen[lbl] = seen.get(lbl, 0) + 1
        out.append(lbl if seen[lbl] == 1 else f"{lbl} #{seen[lbl]}")
    return out


def confusion_data(table: pd.DataFrame, cluster_names: Mapping[int, str] | None = None) -> HeatmapData:
    """A confusion table (rows: folders, columns: clusters) as shares of each folder.

    Clusters are ordered by the folder they hold most of, so a good clustering shows a diagonal.
    """
    t = table.copy()
    if len(t.columns):
        best_row = {c: int(np.argmax(t[c].to_numpy())) for c in t.columns}
        cols = sorted(
            t.columns, key=lambda c: (c == NOISE or str(c) in ("-1", "other", "noise"), best_row[c], str(c))
        )
        t = t[cols]
    counts = t.to_numpy(dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = cluster_names or {}
    x = [names.get(c, str(c)) if not isinstance(c, str) else c for c in t.columns]
    x = [escape(lbl) for lbl in _unique([_cut(lbl, 24) for lbl in x])]
    y = [escape(r) for r in t.index]
    return HeatmapData(share, counts.astype(int), x, y)


def render_confusion(data: HeatmapData) -> go.Figure:
    """The plotly heatmap of :func:`confusion_data`."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=data.z,
            x=data.x,
            y=data.y,
            text=data.counts,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "share of folder"}},
            hovertemplate="folder %{y}<br>cluster %{x}<br>%{text} images (%{z:.0%} of the folder)<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(320, 34 * len(data.y) + 140),
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        xaxis={"title": {"text": "cluster"}, "tickangle": -35, "side": "bottom"},
        yaxis={"title": {"text": "folder"}, "autorange": "reversed"},
    )
    return fig


def confusion_heatmap(table: pd.DataFrame, cluster_names: Mapping[int, str] | None = None) -> go.Figure:
    """Heatmap of a confusion table: :func:`confusion_data` rendered by :func:`render_confusion`."""
    return render_confusion(confusion_data(table, cluster_names))


def ami_data(ami, prompts: Sequence[str]) -> HeatmapData:
    """The adjusted mutual information between the prompts' clusterings, with escaped, shortened prompts."""
    labels = [escape(_cut(p, 40)) for p in prompts]
    z = np.asarray(ami, dtype=float)
    return HeatmapData(z, z, labels, labels)


def render_ami(data: HeatmapData) -> go.Figure:
    """The plotly heatmap of :func:`ami_data`."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(z=data.z, x=data.x, y=data.y, zmin=0, zmax=1, colorscale="Blues", texttemplate="%{z:.2f}")
    )
    fig.update_layout(
        height=120 + 40 * len(data.y),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title="AMI between the prompts' clusterings",
    )
    return fig


def ami_figure(ami, prompts: Sequence[str]) -> go.Figure:
    """Heatmap of the adjusted mutual information between the prompts' clusterings."""
    return render_ami(ami_data(ami, prompts))
