"""Streamlit code of the vlexplore app, and nothing else (tests/test_architecture.py checks it).

``state`` (typed session state), ``cached`` (the only ``st.cache_*`` wrappers), ``feedback``
(progress bars, error banners, flash messages, Markdown-safe user text), ``widgets`` (thumbnail
grid, pager, selection actions, chips), ``actions`` (the library calls a page makes, with progress)
and ``hosts`` (the Host allow-list). The logic they show lives in the library: the user's edits in
:mod:`vlexplore.edit`, the figures in :mod:`vlexplore.plots`, the tables in :mod:`vlexplore.tables`
and :mod:`vlexplore.export`, the allowed roots in :mod:`vlexplore.paths`.
"""
