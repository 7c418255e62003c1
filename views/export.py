"""Export: the labelled table (CSV, formula-safe; Parquet) with the edited names, and a provenance record."""

from __future__ import annotations

import streamlit as st

from ui import actions, state, tables
from ui.widgets import require_clusters, show_flash
from vlexplore.export import sanitize_filename

s = state.get()
require_clusters(s)
actions.ensure_map(s)
st.title("Export")
show_flash(s)

df = s.cached("table", lambda: tables.labelled_frame(s.emb, s.clustered, s.labels, s.names))
stem = sanitize_filename(s.folder.name if s.folder and s.folder.name else "images")

st.markdown(
    f"**{len(df):,} rows**, one per image, with the {s.n_clusters} clusters as named now"
    + (f" (including {len(s.edit_log)} hand edit(s))." if s.edit_log else ".")
)
c1, c2, c3 = st.columns(3)
c1.download_button(
    "Download CSV",
    data=lambda: tables.csv_bytes(df),
    file_name=f"{stem}-clusters.csv",
    mime="text/csv",
    type="primary",
    icon=":material/download:",
    width="stretch",
    help="Text cells that start with = + - @ are prefixed with ' so spreadsheets do not run them as formulas.",
)
c2.download_button(
    "Download Parquet",
    data=lambda: tables.parquet_bytes(df),
    file_name=f"{stem}-clusters.parquet",
    mime="application/vnd.apache.parquet",
    icon=":material/download:",
    width="stretch",
)
record = tables.provenance(
    s.emb,
    s.clustered,
    s.labels,
    s.names,
    folder=s.folder,
    requested_model=s.model,
    device=s.device,
    edit_log=s.edit_log,
    metrics=actions.scores(s),
)
c3.download_button(
    "Download provenance (JSON)",
    data=tables.provenance_bytes(record),
    file_name=f"{stem}-provenance.json",
    mime="application/json",
    icon=":material/download:",
    width="stretch",
    help="Model, method, parameters, seed, hand edits and package versions behind this table.",
)

st.subheader("Preview")
st.dataframe(df.head(200), hide_index=True, width="stretch", height=360)
with st.expander("Provenance"):
    st.json(record, expanded=2)
