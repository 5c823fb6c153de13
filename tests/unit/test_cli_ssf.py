"""`sessionwarden ssf token`: the receiver gets the token, the token file gets only its hash."""

from __future__ import annotations

import pytest

from sessionwarden.cli.main import main
from sessionwarden.ssf.transmitter.auth import Authorizer, Principal, parse_token_file


def test_the_token_line_vouches_for_the_printed_token(capsys: pytest.CaptureFixture[str]) -> None:
    """What an operator appends to ssf_tx_token_file lets exactly that token in."""
    assert 0 == main(["ssf", "token", "--client", "rp.example", "--scopes", "ssf.read"])
    out = capsys.readouterr()
    token, line = out.out.strip(), out.err.strip()
    assert token not in line
    authorize = Authorizer(parse_token_file(line))
    assert Principal("rp.example", frozenset({"ssf.read"})) == authorize(f"Bearer {token}")


def test_unknown_scopes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert 2 == main(["ssf", "token", "--client", "rp", "--scopes", "ssf.admin"])
    assert "scopes are ssf.read and ssf.manage" in capsys.readouterr().err
