"""Streamlit UI for the Iris model API: predict, watch the A/B experiment, drift and admin.

Run with ``streamlit run app/streamlit_app.py --server.port 8501``; the API is found through
``API_URL`` (default http://localhost:5000, see app/settings.py). The page itself lives in app/ui/.
"""

from __future__ import annotations

from app.ui.page import main

if __name__ == "__main__":
    main()
