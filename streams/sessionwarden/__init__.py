"""Sessionwarden processors: the enforcer, the anomaly detectors, the CLI and their wiring."""

__version__ = "0.2.0"
