"""Shadow traffic: a shadow version scores every routed row off the response path, logged but never served."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import BadRequest
from app.serving.router import ConfigUpdate
from app.serving.service import Service
from app.serving.shadow import Served, ShadowScorer
from app.stats.experiment import render_text
from app.store import LabelItem, ShadowCounts
from tests.helpers import counter, wait_until

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]])


def scored(service: Service, rows: int) -> list[ShadowCounts]:
    """The shadow counters once ``rows`` shadow rows are written (the scorer and the log run on threads)."""

    def written() -> list[ShadowCounts] | None:
        service.prediction_log.flush()
        counts = service.store.shadow_counts(experiment_id=service.experiment.id)
        return counts if sum(c.requests for c in counts) >= rows else None

    return wait_until(written, timeout=5, message=f"{rows} shadow rows written")


def shadow_v2(service: Service) -> None:
    service.set_config(ConfigUpdate(weights={"v1": 100, "v2": 0}, shadow=["v2"]))


def test_a_shadow_version_scores_every_routed_row_and_is_never_served(service):
    shadow_v2(service)
    served_before = counter("model_version_requests_total", version="v2")
    shadow_before = counter("shadow_predictions_total", version="v2")
    answers = [service.predict(ROWS, f"user-{i}", 0.0, service.state) for i in range(5)]
    assert {a.version for a in answers} == {"v1"}
    (shadow,) = scored(service, 20)
    assert shadow.version == "v2" and shadow.requests == 20
    expected = service.models.versions["v2"].predictor.predict_proba(ROWS).argmax(axis=1)
    agreed = sum(int(c == e) for a in answers for c, e in zip(a.classes, expected, strict=True))
    assert shadow.agreed == agreed
    assert counter("shadow_predictions_total", version="v2") - shadow_before == 20
    assert counter("model_version_requests_total", version="v2") == served_before  # never counted as served
    counts = {c.version: c.requests for c in service.store.variant_counts(experiment_id=service.experiment.id)}
    assert counts == {"v1": 20}


def test_the_report_judges_a_shadow_version_on_the_same_labelled_rows(service):
    shadow_v2(service)
    answer = service.predict(ROWS, None, 0.0, service.state)
    scored(service, 4)
    truth = [0, 2, 1, 2]
    service.store.set_labels([LabelItem(pid, label) for pid, label in zip(answer.prediction_ids, truth, strict=True)])
    report = service.ab_report()
    shadow = report["shadow"]["v2"]
    v2 = service.models.versions["v2"].predictor.predict_proba(ROWS).argmax(axis=1).tolist()
    assert shadow["labeled"] == 4 and shadow["correct"] == sum(int(p == t) for p, t in zip(v2, truth, strict=True))
    assert shadow["served_accuracy"] == sum(int(p == t) for p, t in zip(answer.classes, truth, strict=True)) / 4
    assert shadow["method"] == "mcnemar-exact" and 0.0 <= shadow["p_value"] <= 1.0
    assert "v2" not in report["variants"] or report["variants"]["v2"]["requests"] == 0
    assert f"v2: 4 rows, agrees with served {100 * shadow['agreement']:.1f}%" in render_text(report)


def test_versioned_requests_are_not_shadowed(service):
    shadow_v2(service)
    service.predict(ROWS, None, 0.0, service.state, version="v1")
    service.predict(ROWS, None, 0.0, service.state)  # routed: scored, and written after the versioned one
    assert sum(c.requests for c in scored(service, 4)) == 4


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (ConfigUpdate(shadow=["v7"]), "unknown shadow version 'v7'"),
        (ConfigUpdate(shadow=["v2"]), "a shadow version must have weight 0"),
    ],
)
def test_shadow_versions_are_checked(service, update, message):
    before = service.experiment
    with pytest.raises(BadRequest, match=message):
        service.set_config(update)
    assert service.experiment == before


def test_beyond_its_bound_the_queue_drops_and_counts(service):
    lost: list[int] = []
    scorer = ShadowScorer(service.prediction_log, max_rows=6, on_lost=lost.append)  # never started: nothing drains
    served = Served(service.models, ("v2", "v1"), 1, 0.0, ROWS, ["a", "b", "c", "d"], [0, 0, 0, 0], None, None)
    scorer.submit(served)
    scorer.submit(served)
    assert lost == [8]  # four rows for each of two shadow versions
    assert scorer.score_pending() == 8 and scorer.score_pending() == 0
