"""The Keycloak admin client over a fake transport: the requests it makes, the token it
caches, and that the client secret never leaves the token request."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sessionwarden.config.settings import KeycloakSettings
from sessionwarden.idp.keycloak import HttpRequest, HttpResponse, KeycloakAdmin
from sessionwarden.idp.retry import Verdict

SECRET = "s3cr3t-never-logged"


class FakeKeycloak:
    def __init__(self, answers: list[int | None], token_status: int = 200) -> None:
        self.answers = answers
        self.token_status = token_status
        self.requests: list[HttpRequest] = []
        self.issued = 0

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.method == "POST":
            if self.token_status != 200:
                return HttpResponse(self.token_status, b'{"error":"unauthorized_client"}')
            self.issued += 1
            body = {"access_token": f"tok{self.issued}", "expires_in": 60}
            return HttpResponse(200, orjson.dumps(body))
        status = self.answers.pop(0)
        return HttpResponse(status, b'{"error":"Session not found"}' if status == 404 else b"")


def settings(tmp_path: Path, **values: object) -> KeycloakSettings:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    return KeycloakSettings(url="http://127.0.0.1:8080/kc", client_secret_file=secret, **values)  # type: ignore[arg-type]


def test_end_session_deletes_the_session_with_a_service_account_token(tmp_path: Path) -> None:
    """Token by client credentials in the session's realm, then DELETE of the quoted id."""
    kc = FakeKeycloak([204])
    admin = KeycloakAdmin(settings(tmp_path), kc, clock=lambda: 0.0)
    answer = admin.end_session("acme", "a/b c")
    assert (Verdict.ENDED, 204) == (answer.verdict, answer.status)
    token, delete = kc.requests
    assert ("POST", "http://127.0.0.1:8080/kc/realms/acme/protocol/openid-connect/token") == (
        token.method,
        token.url,
    )
    assert token.body is not None and b"grant_type=client_credentials" in token.body
    assert ("DELETE", "http://127.0.0.1:8080/kc/admin/realms/acme/sessions/a%2Fb%20c") == (
        delete.method,
        delete.url,
    )
    assert {"Authorization": "Bearer tok1"} == delete.headers
    assert SECRET not in repr(token) and SECRET not in repr(delete.headers)


def test_the_token_is_cached_until_most_of_its_lifetime_passed(tmp_path: Path) -> None:
    """60 s tokens are used for 48 s, then a new one is asked."""
    now = [0.0]
    kc = FakeKeycloak([204, 204, 204])
    admin = KeycloakAdmin(settings(tmp_path), kc, clock=lambda: now[0])
    admin.end_session("acme", "s1")
    now[0] = 47.9
    admin.end_session("acme", "s2")
    now[0] = 48.1
    admin.end_session("acme", "s3")
    assert ["POST", "DELETE", "DELETE", "POST", "DELETE"] == [r.method for r in kc.requests]


def test_check_gets_the_token_ahead_and_says_why_it_could_not(tmp_path: Path) -> None:
    """The first revocation then pays for no token request; a refusal is a short reason."""
    kc = FakeKeycloak([204])
    admin = KeycloakAdmin(settings(tmp_path), kc, clock=lambda: 0.0)
    assert admin.check("acme") is None
    admin.end_session("acme", "s1")
    assert ["POST", "DELETE"] == [r.method for r in kc.requests]
    refused = FakeKeycloak([], token_status=401)
    why = KeycloakAdmin(settings(tmp_path), refused, clock=lambda: 0.0).check("acme")
    assert "token: HTTP 401 unauthorized_client" == why


def test_a_refused_token_is_dropped_and_asked_again(tmp_path: Path) -> None:
    """401 (a token revoked or expired early): a new token next time, then the DELETE."""
    kc = FakeKeycloak([401, 204])
    admin = KeycloakAdmin(settings(tmp_path), kc, clock=lambda: 0.0)
    assert Verdict.REAUTH == admin.end_session("acme", "s1").verdict
    assert Verdict.ENDED == admin.end_session("acme", "s1").verdict
    assert ["Bearer tok1", "Bearer tok2"] == [
        r.headers["Authorization"] for r in kc.requests if r.method == "DELETE"
    ]


def test_a_forbidden_token_is_dropped_so_a_role_granted_since_counts(tmp_path: Path) -> None:
    """403 (the account lacks manage-users): asked again later, with a new token."""
    kc = FakeKeycloak([403, 204])
    admin = KeycloakAdmin(settings(tmp_path), kc, clock=lambda: 0.0)
    assert Verdict.AGAIN == admin.end_session("acme", "s1").verdict
    assert Verdict.ENDED == admin.end_session("acme", "s1").verdict
    assert ["POST", "DELETE", "POST", "DELETE"] == [r.method for r in kc.requests]


def test_an_admin_realm_serves_every_realm(tmp_path: Path) -> None:
    """keycloak_admin_realm=master: one token from master for the sessions of any realm."""
    kc = FakeKeycloak([204, 404])
    admin = KeycloakAdmin(settings(tmp_path, admin_realm="master"), kc, clock=lambda: 0.0)
    admin.end_session("acme", "s1")
    assert Verdict.ALREADY_ENDED == admin.end_session("globex", "s2").verdict
    assert [
        "http://127.0.0.1:8080/kc/realms/master/protocol/openid-connect/token",
        "http://127.0.0.1:8080/kc/admin/realms/acme/sessions/s1",
        "http://127.0.0.1:8080/kc/admin/realms/globex/sessions/s2",
    ] == [r.url for r in kc.requests]


@pytest.mark.parametrize(
    ("status", "reason"), [(401, "token: HTTP 401 unauthorized_client"), (None, "token: no answer")]
)
def test_a_failed_token_request_is_asked_again_with_its_error_code_only(
    tmp_path: Path, status: int | None, reason: str
) -> None:
    """A wrong secret or a down Keycloak never drops the revocation; the reason is a code."""
    kc = FakeKeycloak([], token_status=status)  # type: ignore[arg-type]
    answer = KeycloakAdmin(settings(tmp_path), kc, clock=lambda: 0.0).end_session("acme", "s")
    assert (Verdict.AGAIN, reason) == (answer.verdict, answer.reason)
    assert ["POST"] == [r.method for r in kc.requests]


def test_the_secret_is_read_from_its_file_and_not_shown(tmp_path: Path) -> None:
    """The settings hold the secret's first line, and no repr of them carries it."""
    loaded = settings(tmp_path)
    assert SECRET == loaded.client_secret
    assert SECRET not in repr(loaded) and SECRET not in str(loaded.model_dump())


def test_plain_http_is_only_for_a_loopback_keycloak(tmp_path: Path) -> None:
    """The client secret never crosses a network in clear."""
    with pytest.raises(ValueError, match="plain http"):
        KeycloakSettings(url="http://sso.example.com")
    assert "https://sso.example.com" == KeycloakSettings(url="https://sso.example.com").url
    assert "http://localhost:8080" == KeycloakSettings(url="http://localhost:8080").url
