"""Streamlit-only helpers of the vlexplore app.

``state`` (typed session state), ``cached`` (the only ``st.cache_*`` wrappers),
``widgets`` (thumbnail grid, progress, error banner) and ``actions`` (the facade calls
a page makes, with progress) import Streamlit. ``roots``, ``edits``, ``figures`` and
``tables`` do not: they are pure functions the tests call directly.
"""
