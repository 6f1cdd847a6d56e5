"""How a p-value is written for people: one rule, used by the report the API sends and the CLI prints."""

from __future__ import annotations


def format_p(p: float, alpha: float | None = None) -> str:
    """Format a p-value as 'p < 0.001' or 'p = 0.012'; with ``alpha`` the digits never cross it."""
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.3f}"
    # Rounding must not flip a result across alpha (0.0496 shown as 0.050 reads as not significant).
    if alpha is not None and (float(text) < alpha) != (p < alpha):
        text = f"{p:.4g}"
    return f"p = {text}"


def pct(x: float) -> str:
    """Format a proportion as a percentage with one decimal."""
    return f"{100.0 * x:.1f}%"
