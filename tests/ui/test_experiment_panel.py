"""app/ui/panels/experiment.py: the A/B report as the server decided it, never re-judged by the page."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.ui.driver import chart_data, chart_spec, charts, markdown_text, metric_values, run_app, tab
from tests.ui.fake_api import AB_REPORT, TIMELINE, FakeApi


def report_with(comparison: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of the canned report, its headline comparison updated with ``comparison``."""
    report = copy.deepcopy(AB_REPORT)
    report["comparison"].update(comparison or {})
    report.update(changes)
    return report


def test_experiment_panel_shows_report_not_json(fake_api: FakeApi) -> None:
    at = run_app()

    experiment = tab(at, "Experiment")
    assert not experiment.json
    assert experiment.caption[0].value == "Experiment #3 · started 2026-11-24 03:00 UTC"
    assert AB_REPORT["recommendation"] in experiment.info[0].value
    metrics = metric_values(experiment)
    assert metrics["v1 accuracy"] == "100.0%"
    assert metrics["v2 accuracy"] == "71.2%"
    assert metrics["Accuracy difference"] == "-28.7 pp"
    assert metrics["p-value"] == "p < 0.001"
    assert metrics["Significant"] == "yes"
    assert markdown_text(experiment) == (
        "v2 vs v1: accuracy difference -28.7 points, p < 0.001 (z-test): significant, v1 is better."
    )
    captions = " ".join(c.value for c in experiment.caption)
    assert (
        "Always-valid test (stays correct however often you refresh): p = 0.012, "
        "confidence sequence for the difference -45.0% – -12.0%: a real difference."
    ) in captions
    assert "95% CI 91.2% – 100.0%" in captions
    assert "v1: 120 requests · v2: 110 requests" in captions
    assert len(charts(experiment)) == 3  # the traffic split, then accuracy and share over time
    table = experiment.dataframe[0].value
    assert list(table["observed share"]) == ["52.0%", "48.0%"]
    assert list(table["p95 latency"]) == ["0.6 ms", "0.9 ms"]
    assert not experiment.warning


def test_the_p_value_is_the_servers_text_so_it_never_crosses_alpha(fake_api: FakeApi) -> None:
    # Rounded to three places 0.0496 reads 0.050, which a reader takes as "not below alpha".
    fake_api.reply(
        "GET",
        "/ab/report",
        200,
        report_with({"p_value": 0.0496, "p_value_adjusted": 0.0496, "p_value_text": "p = 0.0496"}),
    )

    at = run_app()

    experiment = tab(at, "Experiment")
    assert metric_values(experiment)["p-value"] == "p = 0.0496"
    assert metric_values(experiment)["Significant"] == "yes"
    assert "p = 0.0496 (z-test): significant, v1 is better." in markdown_text(experiment)
    assert "0.050" not in markdown_text(experiment)


def test_the_p_value_text_is_shown_as_sent_without_reading_the_numbers(fake_api: FakeApi) -> None:
    fake_api.reply(
        "GET",
        "/ab/report",
        200,
        report_with({"p_value": None, "p_value_adjusted": None, "p_value_text": "p = 0.0123"}),
    )

    at = run_app()

    assert metric_values(tab(at, "Experiment"))["p-value"] == "p = 0.0123"
    assert "accuracy difference -28.7 points, p = 0.0123 (z-test)" in markdown_text(tab(at, "Experiment"))


@pytest.mark.parametrize("missing", [{"p_value_text": None}, {"p_value_text": ""}])
def test_without_the_servers_p_value_text_the_page_shows_a_dash(fake_api: FakeApi, missing: dict[str, Any]) -> None:
    fake_api.reply("GET", "/ab/report", 200, report_with({"p_value": 0.02, "p_value_adjusted": 0.02, **missing}))

    at = run_app()

    experiment = tab(at, "Experiment")
    assert metric_values(experiment)["p-value"] == "—"
    assert "accuracy difference -28.7 points, p-value unknown (z-test): significant" in markdown_text(experiment)
    assert "0.02" not in markdown_text(experiment)


def test_an_absent_p_value_text_also_shows_a_dash(fake_api: FakeApi) -> None:
    report = report_with()
    del report["comparison"]["p_value_text"]
    fake_api.reply("GET", "/ab/report", 200, report)

    at = run_app()

    assert metric_values(tab(at, "Experiment"))["p-value"] == "—"


def test_experiment_panel_says_when_the_difference_is_not_significant_yet(fake_api: FakeApi) -> None:
    comparison = {
        "p_value": 0.141,
        "p_value_adjusted": 0.141,
        "p_value_text": "p = 0.141",
        "significant": False,
        "winner": None,
        "additional_samples_needed": 207,
    }
    fake_api.reply("GET", "/ab/report", 200, report_with(comparison))

    at = run_app()

    experiment = tab(at, "Experiment")
    assert metric_values(experiment)["p-value"] == "p = 0.141"
    assert metric_values(experiment)["Significant"] == "no"
    assert "p = 0.141 (z-test): not significant yet, about 207 more labelled predictions" in markdown_text(experiment)


def test_every_tested_challenger_gets_a_sentence(fake_api: FakeApi) -> None:
    headline = copy.deepcopy(AB_REPORT["comparison"])
    v3 = headline | {
        "challenger": "v3",
        "accuracy_diff": 0.01,
        "p_value_text": "p = 0.800",
        "significant": False,
        "additional_samples_needed": None,
    }
    untested = dict.fromkeys(headline) | {"baseline": "v1", "challenger": "v4", "significant": False}
    fake_api.reply("GET", "/ab/report", 200, report_with(comparisons=[headline, v3, untested]))

    at = run_app()

    sentences = [m.value for m in tab(at, "Experiment").markdown]
    assert sentences == [
        "v2 vs v1: accuracy difference -28.7 points, p < 0.001 (z-test): significant, v1 is better.",
        "v3 vs v1: accuracy difference +1.0 points, p = 0.800 (z-test): not significant yet, more data needed.",
    ]


def test_experiment_panel_warns_on_sample_ratio_mismatch_with_the_servers_p_text(fake_api: FakeApi) -> None:
    report = report_with()
    report["srm"].update({"mismatch": True, "p_value": 0.00001, "p_value_text": "p < 0.001"})
    fake_api.reply("GET", "/ab/report", 200, report)

    at = run_app()

    (warning,) = tab(at, "Experiment").warning
    assert warning.value == (
        "Sample ratio mismatch: the observed traffic split differs from the configured weights "
        "(p < 0.001, below the 0.001 threshold). Check the router before trusting this comparison."
    )


def test_a_mismatch_without_p_text_or_threshold_invents_neither(fake_api: FakeApi) -> None:
    report = report_with()
    report["srm"] = {"mismatch": True, "p_value": 0.00001}
    fake_api.reply("GET", "/ab/report", 200, report)

    at = run_app()

    (warning,) = tab(at, "Experiment").warning
    assert "configured weights (p-value unknown). Check the router" in warning.value


def test_experiment_panel_without_labelled_data(fake_api: FakeApi) -> None:
    report = copy.deepcopy(AB_REPORT)
    for variant in report["variants"].values():
        variant.update(
            {
                "labeled": 0,
                "correct": 0,
                "accuracy": None,
                "accuracy_ci95": None,
                "latency_p50_ms": None,
                "latency_p95_ms": None,
            }
        )
    # The real API keeps the comparison object but nulls its numbers and its p-value text.
    report["comparison"] = dict.fromkeys(AB_REPORT["comparison"]) | {
        "baseline": "v1",
        "challenger": "v2",
        "significant": False,
    }
    report["comparisons"] = [report["comparison"]]
    report["recommendation"] = "collect more labelled data"
    fake_api.reply("GET", "/ab/report", 200, report)

    at = run_app()

    experiment = tab(at, "Experiment")
    assert metric_values(experiment)["v1 accuracy"] == "—"
    assert "p-value" not in metric_values(experiment)
    assert any(i.value == "Not enough labelled predictions to compare the versions yet." for i in experiment.info)
    assert "No labelled predictions yet." in [c.value for c in experiment.caption]
    assert not experiment.markdown
    assert not at.error


def test_a_report_without_traffic_says_so(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/ab/report", 200, report_with(variants={}, comparison=None))

    at = run_app()

    experiment = tab(at, "Experiment")
    assert experiment.info[-1].value == "No traffic recorded in this experiment yet."
    assert not experiment.metric


def test_without_a_sequential_verdict_the_page_invents_none(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/ab/report", 200, report_with({"sequential": None}))

    at = run_app()

    captions = " ".join(c.value for c in tab(at, "Experiment").caption)
    assert "Always-valid" not in captions


def timeline_with(**changes: Any) -> dict[str, Any]:
    """A copy of the canned timeline with some fields changed."""
    timeline = copy.deepcopy(TIMELINE)
    timeline.update(changes)
    return timeline


def marks(chart: Any) -> list[tuple[str, Any]]:
    """(mark type, opacity or stroke dash) of each layer of a chart."""
    found = []
    for layer in chart_spec(chart)["layer"]:
        mark = layer["mark"]
        found.append((mark["type"], mark.get("opacity", mark.get("strokeDash"))))
    return found


def test_accuracy_over_time_has_both_bands_the_shadow_dashed_and_the_periods(fake_api: FakeApi) -> None:
    at = run_app()

    experiment = tab(at, "Experiment")
    accuracy, share = charts(experiment)[1:]
    assert marks(accuracy)[:3] == [("area", 0.12), ("area", 0.3), ("line", None)]
    assert [m[0] for m in marks(accuracy)[3:]] == ["rule", "text", "text", "text"]
    line = chart_spec(accuracy)["layer"][2]["encoding"]
    assert line["strokeDash"]["scale"] == {"domain": ["served", "shadow (not served)"], "range": [[1, 0], [6, 4]]}
    rows = chart_data(accuracy)
    shadow = [r for r in rows if r.get("kind") == "shadow (not served)"]
    assert {r["version"] for r in shadow} == {"v3"} and len(shadow) == len(TIMELINE["shadow"]["v3"])
    newest_v2 = [r for r in rows if r.get("version") == "v2" and r.get("kind") == "served"][-1]
    point = TIMELINE["versions"]["v2"][-1]
    assert (newest_v2["ci_lo"], newest_v2["ci_hi"]) == tuple(point["ci95"])  # the server's intervals, as sent
    assert (newest_v2["cs_lo"], newest_v2["cs_hi"]) == tuple(point["cs"])
    labels = [r["label"] for r in rows if "label" in r]
    assert labels == [
        "#1 env: v1 100 · v2 0",
        "#2 rollout: v1 90 · v2 10 · shadow v3",
        "#3 rollout: v1 50 · v2 50 · shadow v3",
    ]
    assert "Dashed: shadow versions" in " ".join(c.value for c in experiment.caption)
    # The share of each served version, slice by slice; the shadow version is served nothing.
    steps = chart_spec(share)["layer"][0]
    assert steps["mark"]["interpolate"] == "step-before"
    assert steps["encoding"]["color"]["legend"]["values"] == ["v1", "v2"]
    assert steps["encoding"]["color"]["scale"]["domain"] == ["v1", "v2", "v3"]  # colours as in the accuracy chart


def test_without_labels_there_is_no_accuracy_over_time_but_the_split_is_shown(fake_api: FakeApi) -> None:
    unlabelled = {
        version: [p | {"labeled": 0, "correct": 0, "accuracy": None, "ci95": None, "cs": None} for p in points]
        for version, points in TIMELINE["versions"].items()
    }
    fake_api.reply("GET", "/ab/timeline", 200, timeline_with(versions=unlabelled, shadow={}))

    at = run_app()

    experiment = tab(at, "Experiment")
    assert experiment.info[-1].value.startswith("No labelled predictions in this time yet")
    assert len(charts(experiment)) == 2  # the report's split and the share over time


def test_an_empty_timeline_shows_only_the_report(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/ab/timeline", 200, timeline_with(versions={}, shadow={}, periods=[]))

    at = run_app()

    experiment = tab(at, "Experiment")
    assert len(charts(experiment)) == 1 and not experiment.error
    assert metric_values(experiment)["v1 accuracy"] == "100.0%"


def test_a_timeline_that_fails_leaves_the_report(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/ab/timeline", 503, {"error": "state store unavailable, try again shortly"})

    at = run_app()

    experiment = tab(at, "Experiment")
    (error,) = experiment.error
    assert error.value == "Cannot load the timeline: state store unavailable, try again shortly (HTTP 503)"
    assert metric_values(experiment)["v1 accuracy"] == "100.0%" and len(charts(experiment)) == 1


def test_malformed_points_are_left_out(fake_api: FakeApi) -> None:
    timeline = timeline_with(
        versions={"v1": [None, {"at": "yesterday"}, TIMELINE["versions"]["v1"][-1] | {"ci95": "wide", "cs": [1]}]},
        shadow=["not", "a", "mapping"],
        periods=[None, {"started_at": "?"}],
    )
    fake_api.reply("GET", "/ab/timeline", 200, timeline)

    at = run_app()

    experiment = tab(at, "Experiment")
    assert not experiment.error and len(charts(experiment)) == 3
    (row,) = [r for r in chart_data(charts(experiment)[1]) if r.get("version") == "v1" and "accuracy" in r][:1]
    assert row["ci_lo"] is None and row["cs_hi"] is None


def test_shadow_versions_are_judged_as_the_server_judged_them(fake_api: FakeApi) -> None:
    experiment = tab(run_app(), "Experiment")
    (shadow,) = [t.value for t in experiment.dataframe if "agrees with served" in t.value.columns]
    row = shadow.iloc[0].to_dict()
    assert row == {
        "version": "v3",
        "rows scored": 412,
        "agrees with served": "93.4%",
        "labelled": 160,
        "accuracy": "93.8%",
        "served, same rows": "85.0%",
        "difference": "+8.8 pp",
        "McNemar": "p = 0.003",
    }


def test_no_shadow_table_without_shadow_versions(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/ab/report", 200, report_with(shadow={}))
    experiment = tab(run_app(), "Experiment")
    assert not [t for t in experiment.dataframe if "agrees with served" in t.value.columns]


def test_under_a_bandit_the_sample_ratio_check_is_said_not_to_apply(fake_api: FakeApi) -> None:
    note = "not applicable: a bandit moves traffic toward the better version by design"
    srm = {**AB_REPORT["srm"], "applicable": False, "mismatch": False, "note": note}
    fake_api.reply("GET", "/ab/report", 200, report_with(srm=srm))
    experiment = tab(run_app(), "Experiment")
    assert any(note in i.value for i in experiment.info)
    assert not experiment.warning
