"""Kafka security settings (TLS, SASL), read once and mapped onto every client library we use.

``KafkaSecurity.from_settings(settings.kafka)`` builds it from ``SESSIONWARDEN_KAFKA_*``; the
password files are read (and the settings checked) when the settings are loaded. It maps onto
librdkafka properties (the enforcer, the publishers, the listener, the CLI tools; with the
brokers: ``client_config``) and onto aiokafka / faust arguments (the detectors, anything
asyncio). Secrets never appear in ``repr``, log lines or error messages.

``check_connection`` asks for metadata once and turns the errors a secured cluster answers a
misconfigured client with (wrong password, untrusted certificate) into one ``KafkaAuthError``
line, instead of librdkafka's endless retries.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException

from sessionwarden.errors import SessionwardenError

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

    from sessionwarden.config.settings import KafkaSettings

log = logging.getLogger(__name__)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")


class KafkaAuthError(SessionwardenError):
    """The cluster refused us: authentication failed or the TLS handshake did not verify."""


@dataclass(frozen=True)
class KafkaSecurity:
    """How to reach a secured cluster. ``password``/``key_password`` are hidden from repr.

    SASL PLAIN without TLS is refused unless ``allow_plain_without_tls``; every weakened
    connection that is allowed (that one, any SASL without TLS, TLS without host name
    verification) is logged as a warning when the first client is configured."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: str | None = field(default=None, repr=False)
    verify_hostname: bool = True
    allow_plain_without_tls: bool = False
    # Set once the warning about this configuration's risks is logged (a list: copyable).
    _warned: list[bool] = field(
        default_factory=lambda: [False], init=False, repr=False, compare=False
    )

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> KafkaSecurity:
        """The security of the settings' ``kafka`` section. Equal sections share one object, so
        its warning is logged once per process, not once per client."""
        return _from_settings(kafka)

    def __post_init__(self) -> None:
        if self.plain_password_in_clear and not self.allow_plain_without_tls:
            raise ValueError(
                f"kafka_sasl_mechanism PLAIN over {self.protocol} sends the password "
                "unencrypted: use SASL_SSL, or set kafka_allow_sasl_plain_without_tls=true "
                "to accept that"
            )

    @property
    def plain_password_in_clear(self) -> bool:
        return self.uses_sasl and not self.uses_tls and self.mechanism == "PLAIN"

    def risks(self) -> list[str]:
        """What an attacker on the network path can do with this configuration (log-safe)."""
        found = []
        if self.plain_password_in_clear:
            found.append("the SASL PLAIN password travels unencrypted")
        if self.uses_sasl and not self.uses_tls:
            found.append(
                "the traffic is not encrypted and the connection can be taken over after the login"
            )
        if self.uses_tls and not self.verify_hostname:
            found.append(
                "the brokers' host name is not verified: anyone with a certificate from the "
                "same CA can impersonate them"
            )
        return found

    def _warn_once(self) -> None:
        risks = self.risks()
        if risks and not self._warned[0]:
            self._warned[0] = True
            log.warning("INSECURE KAFKA CONNECTION (%s): %s", self.describe(), "; ".join(risks))

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def librdkafka(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) properties; empty for PLAINTEXT."""
        self._warn_once()
        if self.protocol == "PLAINTEXT":
            return {}
        config: dict[str, Any] = {"security.protocol": self.protocol}
        if self.uses_sasl:
            config["sasl.mechanism"] = self.mechanism
            config["sasl.username"] = self.username
            config["sasl.password"] = self.password or ""
        if self.uses_tls:
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.verify_hostname else "none"
            )
            optional = {
                "ssl.ca.location": self.ca_file,
                "ssl.certificate.location": self.cert_file,
                "ssl.key.location": self.key_file,
                "ssl.key.password": self.key_password,
            }
            config.update({k: str(v) for k, v in optional.items() if v is not None})
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for aiokafka/faust (None without TLS): verifies the broker's chain
        against ``ca_file`` (else the system store) and, unless disabled, its host name."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.check_hostname = self.verify_hostname
        if self.cert_file is not None:
            context.load_cert_chain(
                str(self.cert_file),
                str(self.key_file) if self.key_file is not None else None,
                self.key_password,
            )
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients."""
        self._warn_once()
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.uses_sasl:
            kwargs.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password or "",
            )
        return kwargs

    def faust_credentials(self) -> CredentialsT | None:
        """``broker_credentials`` for a faust app (None for PLAINTEXT)."""
        from faust.auth import SASLCredentials, SSLCredentials

        self._warn_once()
        if self.protocol == "PLAINTEXT":
            return None
        if self.uses_sasl:
            return SASLCredentials(
                username=self.username,
                password=self.password or "",
                ssl_context=self.ssl_context(),
                mechanism=self.mechanism,
            )
        return SSLCredentials(self.ssl_context())

    def describe(self) -> str:
        """A log-safe one-line summary (no secrets)."""
        text = self.protocol
        if self.uses_sasl:
            text += f" {self.mechanism} as {self.username!r}"
            text += ", password NOT encrypted" if self.plain_password_in_clear else ""
        if self.uses_tls:
            text += f", CA {self.ca_file or 'system store'}"
            text += "" if self.verify_hostname else ", host name NOT verified"
        return text


@functools.lru_cache(maxsize=64)
def _from_settings(kafka: KafkaSettings) -> KafkaSecurity:
    tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    return KafkaSecurity(
        protocol=kafka.security_protocol,
        mechanism=kafka.sasl_mechanism,
        username=kafka.sasl_username,
        password=kafka.sasl_password,
        ca_file=kafka.ssl_ca_file if tls else None,
        cert_file=kafka.ssl_cert_file if tls else None,
        key_file=kafka.ssl_key_file if tls else None,
        key_password=kafka.ssl_key_password,
        verify_hostname=kafka.ssl_verify_hostname,
        allow_plain_without_tls=kafka.allow_sasl_plain_without_tls,
    )


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """``bootstrap.servers`` and the security properties, for any librdkafka client."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        **KafkaSecurity.from_settings(kafka).librdkafka(),
    }


def explain_refusal(err: KafkaError) -> str | None:
    """One line for an error that retrying will not fix, else None."""
    text = err.str()
    if err.code() == KafkaError._AUTHENTICATION or "SASL authentication" in text:
        return f"authentication failed: {text}"
    if err.code() == KafkaError._SSL or "certificate verify failed" in text:
        return f"TLS handshake failed: {text}"
    return None


def check_connection(
    bootstrap_servers: str, security: KafkaSecurity, timeout: float = 15.0
) -> None:
    """Raise KafkaAuthError at once when the cluster refuses our credentials or our TLS check
    fails; return when metadata arrives or nothing conclusive happened within ``timeout``."""
    from confluent_kafka.admin import AdminClient

    refused: list[str] = []
    seen = threading.Event()

    def on_error(err: KafkaError) -> None:
        reason = explain_refusal(err)
        if reason is not None:
            refused.append(reason)
            seen.set()

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "client.id": "sessionwarden-check",
            "error_cb": on_error,
            "log_level": 0,
            **security.librdkafka(),
        }
    )
    step = 0.5
    waited = 0.0
    while waited < timeout and not seen.is_set():
        try:
            admin.list_topics(timeout=step)
        except KafkaException:
            admin.poll(0)  # serve error_cb
            waited += step
            continue
        admin.poll(0)
        break
    if refused:
        where = f"Kafka at {bootstrap_servers} ({security.describe()})"
        raise KafkaAuthError(f"{where}: {refused[0]}")
