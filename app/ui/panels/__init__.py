"""One module per part of the page; each exposes ``render(client, ...)`` and reads only what the API sends.

``connection`` is the sidebar; ``predict``, ``experiment``, ``drift``, ``rollout`` and ``admin`` are the tabs, in
that order.
"""
