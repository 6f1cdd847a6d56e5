"""Drive the Streamlit page under AppTest: run it, rerun it, and find its widgets by what a person reads."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from streamlit.testing.v1 import AppTest

from app.settings import REPO_DIR

APP_PATH = REPO_DIR / "app" / "streamlit_app.py"
RUN_TIMEOUT = 15.0
TAB_LABELS = ["Predict", "Experiment", "Drift", "Rollout", "Admin"]


def run_app(query_params: dict[str, str] | None = None) -> AppTest:
    """Run the entry point once, as `streamlit run` would, and check nothing leaked out as an exception."""
    at = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT)
    at.query_params.update(query_params or {})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    """Rerun after an interaction and check nothing leaked out as an exception."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric_values(block: Any) -> dict[str, str]:
    """Label to value of every st.metric in block."""
    return {m.label: m.value for m in block.metric}


def metric_deltas(block: Any) -> dict[str, str]:
    """Label to delta text of every st.metric in block."""
    return {m.label: m.delta for m in block.metric}


def button(at: AppTest, label: str) -> Any:
    """The first button with this label."""
    return next(b for b in at.button if b.label == label)


def sliders(at: AppTest) -> dict[str, Any]:
    """Label to slider widget."""
    return {s.label: s for s in at.slider}


def charts(block: Any) -> list[Any]:
    """Vega-Lite charts (st.bar_chart, st.altair_chart) in block."""
    return list(block.get("vega_lite_chart"))


def chart_spec(chart: Any) -> dict[str, Any]:
    """The Vega-Lite specification a chart element carries (its data travels beside it)."""
    spec: dict[str, Any] = json.loads(chart.proto.spec)
    return spec


def chart_data(chart: Any) -> list[dict[str, Any]]:
    """Every row of every dataset of a chart, in the order of its layers (Streamlit sends them as Arrow)."""
    rows: list[dict[str, Any]] = []
    for dataset in chart.proto.datasets:
        rows.extend(pa.ipc.open_stream(dataset.data.data).read_all().to_pylist())
    return rows


def markdown_text(block: Any) -> str:
    """All st.write / st.markdown text in block, joined."""
    return " ".join(m.value for m in block.markdown)


def tab(at: AppTest, label: str) -> Any:
    """The tab with this label."""
    return next(t for t in at.tabs if t.label == label)


def predict(at: AppTest) -> AppTest:
    """Press Get Prediction."""
    button(at, "Get Prediction").click()
    return rerun(at)
