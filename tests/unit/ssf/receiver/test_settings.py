"""The receiver's transmitters are configured strictly: a mistake stops the start, named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sessionwarden.config.settings import load_settings
from sessionwarden.errors import ConfigError
from sessionwarden.ssf.receiver.bearer import ClientCredentials
from sessionwarden.ssf.receiver.service import poll_bearer


def transmitter(**changes: Any) -> dict[str, Any]:
    return {
        "name": "idp", "issuer": "https://idp", "jwks_uri": "https://idp/jwks",
        "audience": "sw", "tenant": "acme", "delivery": "push",
        "push_token_file": "/run/secrets/push", **changes,
    }  # fmt: skip


def oauth_poll(**changes: Any) -> dict[str, Any]:
    return transmitter(**{
        "delivery": "poll", "poll_url": "https://idp/poll", "push_token_file": None,
        "poll_token_url": "https://idp/token", "poll_client_id": "sw",
        "poll_client_secret_file": "/run/secrets/sw", "poll_scope": "ssf.read", **changes,
    })  # fmt: skip


def test_transmitters_come_from_the_config_file_or_json_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "sw.toml"
    config.write_text(
        '[[ssf_receiver_transmitters]]\nname = "kc"\nissuer = "https://kc"\n'
        'metadata_url = "https://kc/.well-known/ssf-configuration"\naudience = "sw"\n'
        'tenant = "acme"\ndelivery = "poll"\npoll_url = "https://kc/poll"\n'
        'poll_token_file = "/run/secrets/poll"\n'
        'risk_profiles = {"nist-aal:aal1" = "high"}\nsession_revoked_scope = "user"\n'
    )
    found = load_settings(config).ssf_receiver.transmitters
    assert [("kc", "poll", {"nist-aal:aal1": "high"}, "user")] == [
        (t.name, t.delivery, t.risk_profiles, t.session_revoked_scope) for t in found
    ]
    monkeypatch.setenv(
        "SESSIONWARDEN_SSF_RECEIVER_TRANSMITTERS", orjson.dumps([transmitter()]).decode()
    )
    assert ("idp",) == tuple(t.name for t in load_settings().ssf_receiver.transmitters)


def test_a_poll_transmitter_may_take_oauth_client_credentials() -> None:
    """A token file, or a token endpoint, client id and secret file: one of the two."""
    oauth = oauth_poll()
    (found,) = load_settings(ssf_receiver_transmitters=[oauth]).ssf_receiver.transmitters
    assert ("https://idp/token", "sw", Path("/run/secrets/sw"), "ssf.read", None) == (
        found.poll_token_url,
        found.poll_client_id,
        found.poll_client_secret_file,
        found.poll_scope,
        found.poll_token_file,
    )


@pytest.mark.parametrize(
    "bad",
    [
        [transmitter(jwks_uri="")],
        [transmitter(push_token_file=None)],
        [transmitter(delivery="poll")],
        [oauth_poll(poll_client_id="")],
        [oauth_poll(poll_token_file="/t")],
        [oauth_poll(poll_scope='a"b')],
        [oauth_poll(poll_token_url="ftp://idp/token")],
        [transmitter(jwks_uri="file:///etc/jwks")],
        [transmitter(risk_profiles={"AAL1": "high"})],
        [transmitter(risk_profiles={"nist-aal:aal1": "High Risk"})],
        [transmitter(session_revoked_scope="tenant")],
        [transmitter(), transmitter()],
        [transmitter(secret="x")],
    ],
)
def test_a_wrong_transmitter_is_a_config_error(bad: list[dict[str, Any]]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ssf_receiver_transmitters=bad)
    assert "ssf_receiver_transmitters" in str(caught.value)


def test_the_poll_bearer_is_the_token_file_or_client_credentials(tmp_path: Path) -> None:
    """The secret is read from its file at start and never shown in the bearer's repr."""
    secret = tmp_path / "secret"
    secret.write_text("client-secret-0123456789\n")
    (oauth,) = load_settings(
        ssf_receiver_transmitters=[oauth_poll(poll_client_secret_file=str(secret))]
    ).ssf_receiver.transmitters
    bearer = poll_bearer(oauth)
    assert isinstance(bearer, ClientCredentials)
    assert "client-secret" not in repr(bearer)
    token = tmp_path / "token"
    token.write_text("static-token-0123456789\n")
    (static,) = load_settings(
        ssf_receiver_transmitters=[
            transmitter(delivery="poll", poll_url="https://idp/poll", poll_token_file=str(token))
        ]
    ).ssf_receiver.transmitters
    assert "static-token-0123456789" == poll_bearer(static).token()
    with pytest.raises(ConfigError, match="secret"):
        poll_bearer(oauth.model_copy(update={"poll_client_secret_file": tmp_path / "missing"}))
