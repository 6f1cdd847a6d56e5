"""The Streamlit UI, entered through app/streamlit_app.py.

- ``page``: main(), the page config, tabs, per-panel error containment and the sticky user id.
- ``panels``: one module per part of the page (``connection`` sidebar, ``predict``, ``experiment``,
  ``drift``, ``admin``), each with a ``render`` that shows what the API sent.
- ``format``: how names, shares, latencies and times are written (pure functions).
- ``client``: the HTTP client; every call returns an ``ApiResult`` instead of raising.
"""
