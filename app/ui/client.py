"""Small HTTP client for the model API, used by the Streamlit UI.

Every call returns an ``ApiResult`` instead of raising, so a panel of the UI can
show a one-line message and carry on when the API is down, slow or confused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import requests

from app.settings import Settings

_MAX_MESSAGE_CHARS = 240

# Words for a failed status, used when the API sent no {"error": ...} of its own
# (its own text is more specific, so it wins).
_STATUS_HINTS: dict[int, str] = {
    400: "The API rejected the request",
    401: "Admin token missing or wrong",
    403: "Admin changes are disabled on the server (ADMIN_TOKEN is not set)",
    404: "Not found",
    409: "The API refused: the state changed meanwhile",
    503: "The API has no model loaded",
}


@dataclass(frozen=True)
class ApiResult:
    """Outcome of one API call: parsed JSON object on success, else a one-line error."""

    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        """True when the call succeeded and returned a JSON object."""
        return self.error is None


def one_line(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace and truncate so a message always fits on one line."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _error_text(response: requests.Response) -> str:
    """The API's own {"error": ...} text, or the start of a non-JSON body, or ""."""
    try:
        payload = response.json()
    except ValueError:
        return one_line(response.text, 120)
    if isinstance(payload, dict) and payload.get("error"):
        return str(payload["error"])
    return ""


def _http_error(response: requests.Response) -> str:
    """One line for a failed status: the API's words (or a hint for the status) and the code."""
    message = _error_text(response) or _STATUS_HINTS.get(response.status_code, "API error")
    return one_line(f"{message} (HTTP {response.status_code})")


class ApiClient:
    """Calls the model API with a timeout and turns every failure into a message."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.strip().rstrip("/")
        self.timeout = timeout
        # Once the API is unreachable, later calls in the same page run would
        # each wait out the timeout again; remember the failure instead.
        self._unreachable: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient:
        """Build a client from the api_url and api_timeout_seconds settings (API_URL, API_TIMEOUT_SECONDS)."""
        return cls(settings.api_url, settings.api_timeout_seconds)

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> ApiResult:
        """Send one request and return its JSON object or a one-line error."""
        if self._unreachable:
            return ApiResult(error=self._unreachable)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = requests.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout:
            return self._mark_unreachable(f"The API at {self.base_url} did not answer within {self.timeout:g} s")
        except requests.ConnectionError:
            return self._mark_unreachable(f"Cannot reach the API at {self.base_url}: is it running?")
        except requests.RequestException as exc:
            return ApiResult(error=one_line(f"Request to the API failed: {exc}"))
        return self._parse(response)

    def _mark_unreachable(self, message: str) -> ApiResult:
        """Remember that the API is unreachable, so later calls of this run fail at once."""
        self._unreachable = one_line(message)
        return ApiResult(error=self._unreachable)

    @staticmethod
    def _parse(response: requests.Response) -> ApiResult:
        """Turn a response into its JSON object, or a one-line error for a failed or odd reply."""
        status = response.status_code
        if status >= 400:
            return ApiResult(error=_http_error(response), status=status)
        try:
            payload = response.json()
        except ValueError:  # requests' JSONDecodeError is a ValueError
            return ApiResult(error=f"The API sent a reply that is not JSON (HTTP {status})", status=status)
        if not isinstance(payload, dict):
            return ApiResult(error=f"The API sent an unexpected reply (HTTP {status})", status=status)
        return ApiResult(data=payload, status=status)

    def health(self) -> ApiResult:
        """GET /health."""
        return self.request("GET", "/health")

    def models(self) -> ApiResult:
        """GET /models: feature ranges, class names and the version manifest."""
        return self.request("GET", "/models")

    def predict(self, features: list[float], user_id: str) -> ApiResult:
        """POST /predict with the feature vector and the sticky A/B user id."""
        return self.request("POST", "/predict", {"features": features, "user_id": user_id})

    def feedback(self, prediction_id: str, label: int | str, feedback_token: str | None) -> ApiResult:
        """POST /feedback with the true label of an earlier prediction and the token its answer carried."""
        body: dict[str, Any] = {"prediction_id": prediction_id, "label": label}
        if feedback_token:
            body["feedback_token"] = feedback_token
        return self.request("POST", "/feedback", body)

    def config(self) -> ApiResult:
        """GET /config: the current routing weights and the traffic share the server derives from them."""
        return self.request("GET", "/config")

    def update_weights(self, weights: dict[str, int], token: str) -> ApiResult:
        """PUT /config with new routing weights, authorised by the admin token; answers like GET /config."""
        return self.request("PUT", "/config", {"weights": weights}, token=token)

    def drift(self) -> ApiResult:
        """GET /drift: the drift score, the threshold it is judged against and per-feature results."""
        return self.request("GET", "/drift")

    def ab_report(self) -> ApiResult:
        """GET /ab/report: per-version numbers, the comparisons with their p-value text, SRM."""
        return self.request("GET", "/ab/report")

    def timeline(self) -> ApiResult:
        """GET /ab/timeline: each version's accuracy and share over time, and the experiment periods."""
        return self.request("GET", "/ab/timeline")

    def drift_history(self, points: int = 20) -> ApiResult:
        """GET /drift/history: the drift score of successive windows back through the log, oldest first."""
        return self.request("GET", f"/drift/history?points={int(points)}")

    def rollout(self) -> ApiResult:
        """GET /rollouts/current: the canary rollout in progress or the last one (404 when none ever ran)."""
        return self.request("GET", "/rollouts/current")

    def abort_rollout(self, token: str) -> ApiResult:
        """DELETE /rollouts/current, authorised by the admin token: stop the rollout where it is."""
        return self.request("DELETE", "/rollouts/current", token=token)
