"""Export: the labelled table (CSV, formula-safe; Parquet) with the edited names, and a provenance record."""

from __future__ import annotations

import streamlit as st

from ui import actions, state
from ui.feedback import show_flash
from ui.widgets import require_clusters
from vlexplore import export, tables
from vlexplore.export import (
    build_provenance,
    csv_bytes,
    json_text,
    parquet_bytes,
    provenance_path,
    sanitize_filename,
)

s = state.get()
require_clusters(s)
clustered, map_pending = actions.export_clustering(s)
st.title("Export")
show_flash(s)
if map_pending:
    st.info(
        "The map's UMAP layout is still being computed in the background, so umap_x and umap_y are empty "
        "in this table. Everything else is final; open this page again once the Map page shows UMAP's layout "
        "for a table with them.",
        icon=":material/hourglass_top:",
    )

# The curation columns need every image's nearest neighbours: seconds for a small folder, minutes for a
# large one on a CPU, so above export.CURATION_AUTO_MAX images they are added when asked for.
curation = st.toggle(
    "Curation columns (duplicate_group, outlier_score, confident)",
    value=s.n_images <= export.CURATION_AUTO_MAX,
    key="export-curation",
    help="Duplicate groups and outlier scores come from each image's nearest neighbours: "
    f"quick up to {export.CURATION_AUTO_MAX:,} images, minutes for hundreds of thousands without a GPU.",
)
df = s.cached(
    f"table-curation-{curation}-map-{not map_pending}",
    lambda: tables.labelled_frame(s.emb, clustered, s.labels, s.names, curation=curation),
)
stem = sanitize_filename(s.folder.name if s.folder and s.folder.name else "images")

st.markdown(
    f"**{len(df):,} rows**, one per image, with the {s.n_clusters} clusters as named now"
    + (f" (including {len(s.edit_log)} hand edit(s))." if s.edit_log else ".")
)
c1, c2, c3 = st.columns(3)
c1.download_button(
    "Download CSV",
    data=lambda: csv_bytes(df),
    file_name=f"{stem}-clusters.csv",  # the provenance is named after it (provenance_path)
    mime="text/csv",
    type="primary",
    icon=":material/download:",
    width="stretch",
    help="Text cells that start with = + - @ are prefixed with ' so spreadsheets do not run them as formulas.",
)
c2.download_button(
    "Download Parquet",
    data=lambda: parquet_bytes(df),
    file_name=f"{stem}-clusters.parquet",
    mime="application/vnd.apache.parquet",
    icon=":material/download:",
    width="stretch",
)
record = build_provenance(  # the same record as `vlexplore cluster --out` writes beside its table
    s.emb,
    s.clustered,
    labels=s.labels,
    names=s.names,
    edits=s.edit_log,
    metrics=actions.scores(s),
    requested_model=s.model,
    device=s.device,
)
c3.download_button(
    "Download provenance (JSON)",
    data=json_text(record).encode("utf-8"),
    file_name=provenance_path(f"{stem}-clusters.csv").name,
    mime="application/json",
    icon=":material/download:",
    width="stretch",
    help="Model, method, parameters, seed, hand edits and package versions behind this table.",
)

st.subheader("Preview")
st.dataframe(df.head(200), hide_index=True, width="stretch", height=360)
with st.expander("Provenance"):
    st.json(record, expanded=2)
