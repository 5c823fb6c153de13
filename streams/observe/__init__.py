"""Operability: Prometheus metrics, health and readiness of every long-running process."""
