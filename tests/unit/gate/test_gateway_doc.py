"""docs/GATEWAY.md shows the nginx configuration the integration tests run."""

from __future__ import annotations

from pathlib import Path

from sessionwarden.testing.nginx import LOCATIONS, config

DOC = Path(__file__).resolve().parents[3] / "docs/GATEWAY.md"


def test_the_documented_nginx_locations_are_the_tested_ones() -> None:
    """The doc says "tested": its block must be the harness's, character for character."""
    assert LOCATIONS in DOC.read_text()


def test_the_tested_configuration_asks_the_gate_before_the_upstream() -> None:
    text = config(Path("/p"), 8000, 8001, 8002)
    assert "auth_request /_sessionwarden;" in text
    assert "server 127.0.0.1:8001;" in text and "server 127.0.0.1:8002;" in text
    assert "listen 127.0.0.1:8000;" in text
