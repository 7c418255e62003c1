"""Figures of a clustering: the 2-d map (the heatmaps are in :mod:`vlexplore.heatmaps`).

Each figure is made in two steps, as datamapplot does: a *data* function computes what is drawn
(which points, in which trace, with which colour, name and hover text, where the labels sit) and
a *render* function turns that into a plotly figure. The data functions need numpy only, so they
can be tested, cached or drawn by another library; plotly is imported by the render functions.

Every user text (cluster names, file paths, captions, folder names, prompts) is HTML-escaped in
the figure data: plotly renders a subset of HTML in legends, labels and hover texts, links too.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .labels import NOISE, default_name

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

NOISE_COLOUR = "#b8b8b8"
REST_COLOUR = "#7f7f7f"
# plotly.colors.qualitative T10 + Alphabet + Dark24, spelled out so the data step needs no plotly.
PALETTE = [
    "#4C78A8",
    "#F58518",
    "#E45756",
    "#72B7B2",
    "#54A24B",
    "#EECA3B",
    "#B279A2",
    "#FF9DA6",
    "#9D755D",
    "#BAB0AC",
    "#AA0DFE",
    "#3283FE",
    "#85660D",
    "#782AB6",
    "#565656",
    "#1C8356",
    "#16FF32",
    "#F7E1A0",
    "#E2E2E2",
    "#1CBE4F",
    "#C4451C",
    "#DEA0FD",
    "#FE00FA",
    "#325A9B",
    "#FEAF16",
    "#F8A19F",
    "#90AD1C",
    "#F6222E",
    "#1CFFCE",
    "#2ED9FF",
    "#B10DA1",
    "#C075A6",
    "#FC1CBF",
    "#B00068",
    "#FBE426",
    "#FA0087",
    "#2E91E5",
    "#E15F99",
    "#1CA71C",
    "#FB0D0D",
    "#DA16FF",
    "#222A2A",
    "#B68100",
    "#750D86",
    "#EB663B",
    "#511CFB",
    "#00A08B",
    "#FB00D1",
    "#FC0080",
    "#B2828D",
    "#6C7C32",
    "#778AAE",
    "#862A16",
    "#A777F1",
    "#620042",
    "#1616A7",
    "#DA60CA",
    "#6C4516",
    "#0D2A63",
    "#AF0038",
]
MAX_TRACES = 40  # clusters beyond this share one trace (a legend of hundreds of entries helps no one)
MAX_POINTS = 200_000  # points drawn on the map; beyond it a seeded random sample is drawn
MAX_LABELS = 25  # clusters named on the map itself (at their median point)
MAX_HOVER_POINTS = 100_000  # above this, hover shows the cluster only (hover texts cost bandwidth)


def escape(text: object) -> str:
    """``text`` as plotly text that shows exactly that text: ``& < >`` become entities (no tag, no link)."""
    return html.escape(str(text), quote=False)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def marker_size(n: int) -> float:
    """Point size for ``n`` points on the map: smaller as the map fills."""
    if n < 1_000:
        return 8
    if n < 10_000:
        return 5
    if n < 100_000:
        return 3
    return 2


def hover_texts(relpaths: Sequence[str], captions: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """Per image the lines shown on hover on the map: its path, and its caption when it has one."""
    if captions is None:
        return [(p,) for p in relpaths]
    return [(p, c) if c else (p,) for p, c in zip(relpaths, captions)]


def _hover_line(item: str | Sequence[str]) -> str:
    lines = [item] if isinstance(item, str) else list(item)
    return "<br>".join(escape(line) for line in lines)


@dataclass
class MapTrace:
    """One trace of the map: a cluster (or the lumped smaller clusters, or noise).

    Attributes:
        name: the cluster's display name, escaped; legend: the legend entry (name and count).
        colour: its colour; members: the image indices of its points, in point order.
        hover: per point the escaped hover text (``None`` when hover shows the cluster only).
    """

    name: str
    legend: str
    colour: str
    members: np.ndarray
    hover: list[str] | None = None


@dataclass
class MapLabel:
    """A cluster name written on the map at its cluster's median point (escaped, shortened)."""

    x: float
    y: float
    text: str


@dataclass
class MapData:
    """Everything drawn on the map, without plotly: traces, labels, point size.

    Attributes:
        coords: ``(n, 2)`` float32 coordinates of every image (traces index into it).
        traces: one per legend entry, in legend order.
        labels: the cluster names written on the map.
        marker_size: point size; n_shown: points drawn (all unless more than ``max_points``).
    """

    coords: np.ndarray
    traces: list[MapTrace]
    labels: list[MapLabel] = field(default_factory=list)
    marker_size: float = 8
    n_shown: int = 0

    @property
    def members(self) -> list[np.ndarray]:
        """Each trace's image indices, in trace order."""
        return [t.members for t in self.traces]

    def indices(self, points: Sequence[Mapping]) -> np.ndarray:
        """Image indices of plotly selection ``points`` (dicts with ``curve_number`` and ``point_index``)."""
        return selected_indices(self.members, points)


def selected_indices(members: Sequence[np.ndarray], points: Sequence[Mapping]) -> np.ndarray:
    """Image indices of plotly selection ``points``, given each trace's ``members`` (point → image index)."""
    out = []
    for p in points:
        curve, idx = p.get("curve_number"), p.get("point_index")
        if curve is None or idx is None or not 0 <= curve < len(members):
            continue
        trace = members[curve]
        if 0 <= idx < len(trace):
            out.append(int(trace[idx]))
    return np.unique(np.asarray(out, dtype=np.int64))


def map_data(
    coords: np.ndarray,
    labels: np.ndarray,
    names: Mapping[int, str],
    order: Sequence[int],
    colours: Mapping[int, str],
    *,
    hover: Sequence[str | Sequence[str]] | None = None,
    max_points: int = MAX_POINTS,
    seed: int = 0,
) -> MapData:
    """What the 2-d map draws: one trace per cluster in ``order`` (at most ``MAX_TRACES``, the rest lumped).

    Args:
        coords: ``(n, 2)`` map coordinates;
        labels: ``(n,)`` cluster ids.
        names: cluster id → display name;
        order: ids in legend order;
        colours: id → colour.
        hover: per image its hover text, or its lines (e.g. from :func:`hover_texts`); raw text, it is
            escaped here. ``None``, or more than ``MAX_HOVER_POINTS`` points shown: hover names the cluster only.
        max_points: draw a seeded random sample of this many points when there are more.
        seed: random state of that sample.
    """
    coords = np.asarray(coords, dtype=np.float32)
    labels = np.asarray(labels)
    n = len(labels)
    shown = np.arange(n)
    if n > max_points:
        shown = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    shown_hover = hover if hover is not None and len(shown) <= MAX_HOVER_POINTS else None
    lab_shown = labels[shown]
    own = [c for c in order if c >= 0][:MAX_TRACES]
    own_set = set(own)
    rest = [c for c in order if c >= 0 and c not in own_set]
    groups: list[tuple[str, str, np.ndarray]] = []
    for cid in own:
        groups.append((names.get(cid, default_name(cid)), colours.get(cid, "#444"), shown[lab_shown == cid]))
    if rest:
        groups.append((f"{len(rest)} smaller clusters", REST_COLOUR, shown[np.isin(lab_shown, rest)]))
    if NOISE in order:
        groups.append((names.get(NOISE, default_name(NOISE)), NOISE_COLOUR, shown[lab_shown == NOISE]))
    traces = [
        MapTrace(
            name=escape(name),
            legend=escape(f"{name} ({len(idx):,})"),
            colour=colour,
            members=idx,
            hover=[_hover_line(shown_hover[i]) for i in idx] if shown_hover is not None else None,
        )
        for name, colour, idx in groups
    ]
    map_labels = []
    for cid in own[:MAX_LABELS]:
        idx = np.flatnonzero(labels == cid)
        if len(idx) == 0:
            continue
        x, y = np.median(coords[idx], axis=0)
        map_labels.append(MapLabel(float(x), float(y), escape(_cut(names.get(cid, default_name(cid)), 28))))
    return MapData(coords, traces, map_labels, marker_size(len(shown)), len(shown))


def render_map(data: MapData, *, height: int = 640) -> go.Figure:
    """The plotly figure of :func:`map_data`: one ``go.Scattergl`` trace per entry, lasso selection."""
    import plotly.graph_objects as go

    fig = go.Figure()
    coords = data.coords
    for t in data.traces:
        name = t.name.replace("%", "&#37;")  # escaped already; ``%{…}`` would be substituted in a template
        fig.add_trace(
            go.Scattergl(
                x=coords[t.members, 0],
                y=coords[t.members, 1],
                mode="markers",
                name=t.legend,
                marker={"size": data.marker_size, "color": t.colour, "opacity": 0.85, "line": {"width": 0}},
                hovertemplate=(
                    f"<b>{name}</b><br>%{{text}}<extra></extra>"
                    if t.hover is not None
                    else f"<b>{name}</b><extra></extra>"
                ),
                text=t.hover,
            )
        )
    annotations = [
        {
            "x": lbl.x,
            "y": lbl.y,
            "text": lbl.text,
            "showarrow": False,
            "font": {"size": 12, "color": "#1f2430"},
            "bgcolor": "rgba(255,255,255,0.75)",
            "borderpad": 2,
        }
        for lbl in data.labels
    ]
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
    return fig


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
        return selected_indices(self.members, points)


def scatter_map(
    coords: np.ndarray,
    labels: np.ndarray,
    names: Mapping[int, str],
    order: Sequence[int],
    colours: Mapping[int, str],
    *,
    hover: Sequence[str | Sequence[str]] | None = None,
    max_points: int = MAX_POINTS,
    seed: int = 0,
    height: int = 640,
) -> MapFigure:
    """:func:`map_data` rendered by :func:`render_map`, with the selection mapping kept."""
    data = map_data(coords, labels, names, order, colours, hover=hover, max_points=max_points, seed=seed)
    return MapFigure(render_map(data, height=height), data.members, data.n_shown)
