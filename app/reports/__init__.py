"""Reports built from the state store: the A/B verdict and the drift of the live window.

Importable without the serving stack (no models, no Flask), so a cron job or the CLIs load only the
store and the statistics.
"""
