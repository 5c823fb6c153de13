"""Runtime settings: read once at the entry point into one frozen object of nested sections.

Each section holds what one reader needs (``settings.kafka``, ``settings.topics``,
``settings.enforcer``, ``settings.detect``, ``settings.sink``, ``settings.dashboard``,
``settings.gate``, ``settings.metrics``, ``settings.caep``, ``settings.ssf_transmitter``,
``settings.ssf_receiver``, ``settings.keycloak``, ``settings.logging``). Every
setting keeps one flat name, the name the environment (``SESSIONWARDEN_<NAME>``, plus the
conventional ``KAFKA_BOOTSTRAP_SERVERS``), the TOML config file and :func:`load_settings` use;
errors name it. Sources, highest priority first: environment variables, then an optional TOML config
file, then defaults. docs/SETTINGS.md is generated from these models
(``python -m sessionwarden.config.reference``).

Plain data: this package imports nothing of the product above it. The objects made from a
section are made by their own packages (``KafkaSecurity.from_settings(settings.kafka)``,
``CaepConfig.from_settings(settings)``).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sessionwarden.contracts.validation import dotted, error_lines
from sessionwarden.errors import ConfigError

ENV_PREFIX = "SESSIONWARDEN_"
LOOPBACK = r"^(127(\.\d{1,3}){3}|localhost|::1)$"
NAME = r"^[A-Za-z0-9._-]+$"
SOURCE = r"^(cookie|header|jwt):[A-Za-z0-9._-]{1,100}$"
PROFILE = r"^[a-z][a-z0-9_-]{0,31}$"
TENANT_SOURCE = r"^(cookie|header|jwt|constant):[A-Za-z0-9._-]{1,100}$"


def host_instance_id(hostname: str | None = None) -> str:
    """The host's name (the pod name on Kubernetes) made into a valid instance id."""
    name = socket.gethostname() if hostname is None else hostname
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:64]
    return cleaned or "0"


class Section(BaseModel):
    """One group of settings; ``VARIABLES`` maps each field to its flat setting name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    VARIABLES: ClassVar[dict[str, str]] = {}


class KafkaSettings(Section):
    """The Kafka cluster: how every client of every process reaches it (security:
    docs/SECURITY.md), and how the product's topics are made there. Secrets are read from
    files, once, when the settings are loaded; they never appear in repr, logs or error
    messages."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "bootstrap_servers": "bootstrap_servers",
        "security_protocol": "kafka_security_protocol",
        "sasl_mechanism": "kafka_sasl_mechanism",
        "sasl_username": "kafka_sasl_username",
        "sasl_password_file": "kafka_sasl_password_file",
        "ssl_ca_file": "kafka_ssl_ca_file",
        "ssl_cert_file": "kafka_ssl_cert_file",
        "ssl_key_file": "kafka_ssl_key_file",
        "ssl_key_password_file": "kafka_ssl_key_password_file",
        "ssl_verify_hostname": "kafka_ssl_verify_hostname",
        "allow_sasl_plain_without_tls": "kafka_allow_sasl_plain_without_tls",
        "partitions": "partitions",
        "replication_factor": "replication_factor",
        "min_insync_replicas": "min_insync_replicas",
        "fetch_stall_s": "kafka_fetch_stall_s",
    }

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "SESSIONWARDEN_BOOTSTRAP_SERVERS", "bootstrap_servers"
        ),
        min_length=1,
        description="Comma-separated host:port list of the brokers "
        "(`KAFKA_BOOTSTRAP_SERVERS` is read first).",
    )
    security_protocol: str = Field(
        default="PLAINTEXT",
        pattern=r"^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
        description="How clients connect: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: str = Field(
        default="SCRAM-SHA-512",
        pattern=r"^(SCRAM-SHA-256|SCRAM-SHA-512|PLAIN)$",
        description="The SASL mechanism of the SASL_* protocols.",
    )
    sasl_username: str = Field(
        default="", max_length=256, description="The SASL user (needed by the SASL_* protocols)."
    )
    sasl_password_file: Path | None = Field(
        default=None,
        description="File whose first line is the SASL password (needed by the SASL_* protocols).",
    )
    ssl_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle; empty means the system trust store (TLS only)."
    )
    ssl_cert_file: Path | None = Field(
        default=None,
        description="PEM client certificate, for mutual TLS (with kafka_ssl_key_file).",
    )
    ssl_key_file: Path | None = Field(
        default=None, description="PEM private key of the client certificate."
    )
    ssl_key_password_file: Path | None = Field(
        default=None, description="File whose first line is the private key's password."
    )
    ssl_verify_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names its host."
    )
    allow_sasl_plain_without_tls: bool = Field(
        default=False,
        description="SASL PLAIN sends the password as is: refused without TLS unless this is "
        "true (then every process logs an INSECURE KAFKA CONNECTION warning at start).",
    )
    partitions: int = Field(
        default=6, ge=1, le=1024, description="Partitions of every topic the product creates."
    )
    replication_factor: int = Field(
        default=1, ge=1, le=16, description="Replication factor of every topic."
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="min.insync.replicas of every topic; empty means min(2, replication_factor).",
    )
    fetch_stall_s: float = Field(
        default=10.0,
        ge=2.0,
        le=600.0,
        description="A long-running consumer (the enforcer's input, commands and changelog "
        "restore consumers; the sink's, the dashboard's, the CAEP and SSF transmitters', the "
        "idp actuator's) none of whose positions moved for this many seconds while the broker "
        "holds records past one of them (asked through an admin client of its own) is "
        "reopened (after a hung broker a consumer can stop fetching for good); the enforcer "
        "first seeks its input back, then rebuilds its clients. Keep it well above a normal "
        "fetch gap.",
    )
    _sasl_password: str | None = PrivateAttr(default=None)
    _ssl_key_password: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_security(self) -> KafkaSettings:
        protocol = self.security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
        if sasl and not (self.sasl_username and self.sasl_password_file):
            raise ValueError(
                f"kafka_security_protocol {protocol} needs kafka_sasl_username and "
                "kafka_sasl_password_file"
            )
        if not tls:
            for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password_file"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"kafka_{name} is set but {protocol} uses no TLS (use SSL or SASL_SSL)"
                    )
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("kafka_ssl_cert_file and kafka_ssl_key_file go together")
        for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
            path = getattr(self, name)
            if tls and path is not None and not path.is_file():
                raise ValueError(f"kafka_{name}: no such file: {path}")
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError("min_insync_replicas: larger than replication_factor")
        if sasl:
            self._sasl_password = _read_secret("kafka_sasl_password_file", self.sasl_password_file)
        if tls:
            self._ssl_key_password = _read_secret(
                "kafka_ssl_key_password_file", self.ssl_key_password_file
            )
        # The same check as KafkaSecurity's (sessionwarden.kafka.security), made at load.
        plain_in_clear = sasl and not tls and self.sasl_mechanism == "PLAIN"
        if plain_in_clear and not self.allow_sasl_plain_without_tls:
            raise ValueError(
                f"kafka_sasl_mechanism PLAIN over {protocol} sends the password "
                "unencrypted: use SASL_SSL, or set kafka_allow_sasl_plain_without_tls=true "
                "to accept that"
            )
        return self

    @property
    def sasl_password(self) -> str | None:
        """The SASL password, read from ``sasl_password_file`` at load (None without SASL)."""
        return self._sasl_password

    @property
    def ssl_key_password(self) -> str | None:
        """The private key's password, read from ``ssl_key_password_file`` at load (None
        without TLS or without the file)."""
        return self._ssl_key_password


_TOPIC_SUFFIXES = {
    "input": "auth.events",
    "revocations": "sessionwarden.revocations",
    "audit": "sessionwarden.audit",
    "alerts": "sessionwarden.alerts",
    "dlq": "sessionwarden.dlq",
    "caep": "sessionwarden.caep",
    "enforcer_state": "sessionwarden.enforcer-state",
    "commands": "sessionwarden.commands",
}


class TopicNames(Section):
    """Every topic name the product uses, with an optional common prefix (tests use one
    each). The names are fixed when the settings are built and never change; a process that
    reads another input is given settings that name it (``TopicNames(prefix, input=...)``)."""

    VARIABLES: ClassVar[dict[str, str]] = {"prefix": "topic_prefix"}

    prefix: str = Field(
        default="",
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Put in front of every topic name (and of the enforcer's transactional "
        "id and the detectors' changelog topics); lets several deployments or test runs "
        "share one cluster.",
    )
    input: str = Field(default="", description="The auth events the enforcer reads.")
    revocations: str = ""
    audit: str = ""
    alerts: str = ""
    dlq: str = ""
    caep: str = ""
    enforcer_state: str = ""
    commands: str = Field(
        default="",
        description="Operator commands (`sessionwarden revoke`), read by the enforcer; "
        "co-partitioned with the input and writable by operator principals only.",
    )

    def __init__(self, prefix: str = "", **names: str) -> None:
        BaseModel.__init__(self, prefix=prefix, **names)

    @model_validator(mode="before")
    @classmethod
    def _name_from_prefix(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            prefix = data.get("prefix", "")
            if isinstance(prefix, str):
                named = {k: f"{prefix}{v}" for k, v in _TOPIC_SUFFIXES.items() if not data.get(k)}
                return {**data, **named}
        return data

    def renamed(self) -> dict[str, str]:
        """The names that differ from the prefix's own (a benchmark's shared input)."""
        own = TopicNames(self.prefix)
        return {k: getattr(self, k) for k in _TOPIC_SUFFIXES if getattr(self, k) != getattr(own, k)}


class EnforcerSettings(Section):
    """The enforcer (`sessionwarden enforce`): its consumer group and transactions, its firing
    horizon and its local state."""

    VARIABLES: ClassVar[dict[str, str]] = {
        name: name
        for name in (
            "group_id",
            "instance_id",
            "batch_size",
            "poll_timeout_s",
            "transaction_timeout_ms",
            "session_timeout_ms",
            "static_membership",
            "lag_grace_s",
            "producer_delay_budget_s",
            "txn_retry_timeout_s",
            "max_recoveries",
            "state_dir",
            "state_snapshot_interval_s",
            "state_snapshot_records",
            "operators",
        )
    }

    group_id: str = Field(
        default="sessionwarden-enforcer",
        min_length=1,
        description="The enforcer's consumer group (the topic prefix goes in front of it in "
        "the transactional id).",
    )
    instance_id: str = Field(
        default_factory=lambda: host_instance_id(),
        min_length=1,
        max_length=64,
        pattern=NAME,
        description="This instance's part of the transactional id. Defaults to the host's "
        "name (the pod name on Kubernetes), so replicas deployed without one never share a "
        "transactional id and fence each other in turn.",
    )
    batch_size: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="Records per transaction at most: each commit costs two broker round "
        "trips, so larger batches raise throughput (1000 -> 5000: 1.4x) at the price of a "
        "longer batch.",
    )
    poll_timeout_s: float = Field(
        default=0.05, gt=0, le=5, description="How long one poll of the input waits."
    )
    transaction_timeout_ms: int = Field(
        default=10_000, ge=1000, le=900_000, description="The producer's transaction.timeout.ms."
    )
    session_timeout_ms: int = Field(
        default=6_000, ge=1000, le=300_000, description="The consumer's session.timeout.ms."
    )
    static_membership: bool = Field(
        default=True,
        description="Static group membership: a crashed instance that restarts takes its "
        "partitions back at once; the price is that a crashed one's partitions move only "
        "after session_timeout_ms (a planned stop leaves the group and hands them over at "
        "once).",
    )
    lag_grace_s: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="Fire a deadline only once the input is known to be read past deadline "
        "+ this grace.",
    )
    producer_delay_budget_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="How late an auth event may be appended after it was made (publisher "
        "linger + retries) and still count: a deadline d fires only once its partition is "
        "known read through broker time d + budget. Raise it to your producers' worst "
        "publish delay; every second of budget adds a second to every deadline revocation. "
        "Activity appended later than that is audited as `activity_after_revocation`.",
    )
    txn_retry_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="How long one transactional call (send offsets, commit, abort) retries "
        "retriable errors before the batch's outcome counts as unknown and the clients are "
        "rebuilt.",
    )
    max_recoveries: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Client rebuilds in a row (no committed batch in between) before the "
        "enforcer exits non-zero for its supervisor.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="When set, the enforcer keeps one snapshot file per changelog partition "
        "in this directory (0700; files 0600) and restores from it plus the changelog's tail "
        "instead of reading the changelog from offset 0. Unset: no snapshots, every restore "
        "reads the whole changelog. Use a directory of this instance alone (one per "
        "instance_id).",
    )
    state_snapshot_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="A partition's snapshot is rewritten once its state changed and this "
        "much time passed, or sooner after state_snapshot_records.",
    )
    state_snapshot_records: int = Field(
        default=1_000_000,
        ge=1,
        description="Rewrite a partition's snapshot once this many changelog records were "
        "committed since the last one.",
    )
    operators: str = Field(
        default="User:sessionwarden-operator",
        max_length=4096,
        description="The operators whose commands the enforcer applies (comma separated; "
        "empty: none). A command naming another operator is dead-lettered as "
        "`operator_not_allowed`. The name is the command's claim: the ACLs, which let only "
        "operator principals write the commands topic, are what make it true.",
    )

    def allowed_operators(self) -> frozenset[str]:
        """The ``operators`` setting as a set of names."""
        return frozenset(name.strip() for name in self.operators.split(",") if name.strip())


class DetectSettings(Section):
    """The anomaly detectors (`sessionwarden detect`)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        name: f"detect_{name}"
        for name in (
            "group_id",
            "web_enabled",
            "web_host",
            "web_port",
            "data_dir",
            "commit_interval_s",
            "session_timeout_s",
            "max_documents",
        )
    }

    group_id: str = Field(
        default="sessionwarden-detect",
        min_length=1,
        max_length=100,
        pattern=NAME,
        description="Consumer group and faust app id; faust's changelog topics are named "
        "after it (with the topic prefix in front), e.g. "
        "`sessionwarden-detect-users-changelog`.",
    )
    web_enabled: bool = Field(
        default=False,
        description="Serve the worker's web server (faust's /router, /stats ...); the /table "
        "views are never served.",
    )
    web_host: str = Field(
        default="127.0.0.1",
        pattern=LOOPBACK,
        description="The worker's web server's address: a loopback address only.",
    )
    web_port: int = Field(
        default=6066, ge=1, le=65535, description="The worker's web server's port."
    )
    data_dir: Path | None = Field(
        default=None,
        description="faust's working directory; empty means a temporary one (the tables live "
        "in memory and are restored from their changelogs, so nothing on disk must survive).",
    )
    commit_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the worker commits its input offsets."
    )
    session_timeout_s: float = Field(
        default=60.0,
        ge=1,
        le=300,
        description="How long the consumer group waits for a worker that stopped heartbeating "
        "(killed, frozen, cut off) before its partitions move: a worker restarted after a "
        "crash gets them back only then. The worker heartbeats every third of it, at most "
        "every 3 s; the broker's `group.min.session.timeout.ms` (6 s by default) is the floor.",
    )
    max_documents: int = Field(
        default=500_000,
        ge=1_000,
        le=100_000_000,
        description="The most user documents a worker keeps of the audit partitions it reads "
        "(0.5 to 1 KB of memory each, index included). A user's document goes when nothing in "
        "it can change a judgment any more; past this many, the worker removes the documents "
        "that would go first (their live-session counts, marks and cooldowns are forgotten), "
        "counts them and logs a warning.",
    )


class SinkSettings(Section):
    """The PostgreSQL revocation sink (`sessionwarden sink postgres`)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "dsn": "pg_dsn",
        "group_id": "pg_sink_group_id",
        "batch_size": "pg_batch_size",
        "prune_interval_s": "pg_prune_interval_s",
        "cut_off": "pg_cut_off",
    }

    dsn: str = Field(
        default="",
        max_length=4096,
        repr=False,
        description="libpq connection string or URI of the sink's role (the sessionwarden "
        "schema's owner, a member of pg_signal_backend); never logged. Empty: the sink "
        "refuses to start.",
    )
    group_id: str = Field(
        default="sessionwarden-pg-sink",
        min_length=1,
        max_length=100,
        pattern=NAME,
        description="The sink's consumer group.",
    )
    batch_size: int = Field(
        default=5000, ge=1, le=100_000, description="Records per database transaction at most."
    )
    prune_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="How often rows past their keep_until are deleted.",
    )
    cut_off: bool = Field(
        default=True,
        description="Cancel / terminate the backends of sessions just revoked (needs "
        "pg_signal_backend).",
    )


class DashboardSettings(Section):
    """The dashboard (`sessionwarden dashboard`): loopback only, behind a token read from a
    file (a random one is printed when unset)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        name: f"dashboard_{name}" for name in ("host", "port", "token_file", "operator")
    }

    host: str = Field(
        default="127.0.0.1", pattern=LOOPBACK, description="Its address: a loopback address."
    )
    port: int = Field(default=8765, ge=1, le=65535, description="Its port.")
    token_file: Path | None = Field(
        default=None,
        description="File holding the access token; unset: a random one, printed at start.",
    )
    operator: str = Field(
        default="",
        max_length=128,
        description="Turns on the dashboard's revocation actions (end a session, or all of a "
        "user's): the operator name its commands carry, which must be one of the enforcer's "
        "`operators`; its Kafka login then needs WRITE on the commands topic (`sessionwarden "
        "acls` grants it to the security principal when this is set). Empty: read only.",
    )


class GateSettings(Section):
    """The gateway check (`sessionwarden gate`): the forward-auth service that nginx
    `auth_request`, Traefik ForwardAuth and Envoy `ext_authz` (HTTP) ask about each request's
    session, answered from a revocation listener. A source is `cookie:NAME`, `header:NAME` or
    `jwt:CLAIM` (a claim of the verified JWT, see gate_jwt_from); the tenant may also be
    `constant:TENANT`. docs/GATEWAY.md has the gateways' configuration."""

    VARIABLES: ClassVar[dict[str, str]] = {
        name: f"gate_{name}"
        for name in (
            "host", "port", "session_from", "tenant_from", "user_from", "tenants",
            "allow_anonymous", "fail_open", "staleness_budget_s", "jwt_from", "jwks_file",
            "jwks_url", "jwks_cache_s", "jwt_issuer", "jwt_audience", "jwt_algorithms",
            "jwt_leeway_s", "max_header_bytes", "max_token_bytes",
        )
    }  # fmt: skip

    host: str = Field(
        default="127.0.0.1",
        max_length=255,
        description="The address the gate binds to (the gateway must reach it; keep it on a "
        "private network).",
    )
    port: int = Field(default=8790, ge=0, le=65535, description="Its port (0: a free one).")
    session_from: str = Field(
        default="cookie:sessionwarden_session",
        pattern=SOURCE,
        description="Where a request names its session: cookie:NAME, header:NAME or jwt:CLAIM.",
    )
    tenant_from: str = Field(
        default="header:x-tenant",
        pattern=TENANT_SOURCE,
        description="Where a request names its tenant: cookie:NAME, header:NAME, jwt:CLAIM or "
        "constant:TENANT (a single-tenant gate).",
    )
    user_from: str = Field(
        default="",
        pattern=rf"^$|{SOURCE}",
        description="Where to read the user named back to the gateway on success "
        "(X-Sessionwarden-User); empty: none.",
    )
    tenants: str = Field(
        default="",
        max_length=4096,
        description="Comma-separated tenants this gate admits (a session of any other tenant "
        "is refused with 403); empty: any tenant.",
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Let requests that name no session through (default: refused with 401).",
    )
    fail_open: bool = Field(
        default=False,
        description="Keep answering from the revocation set the gate has while its listener "
        "is past gate_staleness_budget_s (default: fail closed, every session refused with 503).",
    )
    staleness_budget_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="How far behind the revocation topic the gate may be before it stops "
        "vouching for sessions.",
    )
    jwt_from: str = Field(
        default="header:authorization",
        pattern=r"^(cookie|header):[A-Za-z0-9._-]{1,100}$",
        description="Where the JWT is, for jwt: sources: header:authorization (a Bearer "
        "token), another header, or a cookie.",
    )
    jwks_file: Path | None = Field(
        default=None, description="The JWKS (JSON) that signs the JWTs, from a file."
    )
    jwks_url: str = Field(
        default="",
        max_length=2048,
        pattern=r"^$|^https?://",
        description="The JWKS from a URL (fetched again after gate_jwks_cache_s, or at once "
        "for an unknown key id, at most every 10 s).",
    )
    jwks_cache_s: float = Field(
        default=300.0, gt=0, le=86_400, description="How long a fetched JWKS is used."
    )
    jwt_issuer: str = Field(
        default="", max_length=2048, description="The JWT's required `iss`; empty: not checked."
    )
    jwt_audience: str = Field(
        default="",
        max_length=2048,
        description="An audience the JWT's `aud` must contain; empty: not checked.",
    )
    jwt_algorithms: str = Field(
        default="RS256,ES256",
        pattern=r"^(RS256|ES256)(,(RS256|ES256))?$",
        description="The signature algorithms accepted (RS256, ES256).",
    )
    jwt_leeway_s: float = Field(
        default=30.0, ge=0, le=600, description="Clock skew allowed on `exp` and `nbf`."
    )
    max_header_bytes: int = Field(
        default=8192,
        ge=256,
        le=65_536,
        description="Longest Cookie or identity header the gate reads; longer is refused (400 "
        "at the gate, 401 to the client).",
    )
    max_token_bytes: int = Field(
        default=8192, ge=256, le=65_536, description="Longest JWT the gate verifies."
    )

    def tenant_list(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.tenants.split(",") if t.strip())

    @model_validator(mode="after")
    def _check(self) -> GateSettings:
        uses_jwt = any(
            s.startswith("jwt:") for s in (self.session_from, self.tenant_from, self.user_from)
        )
        if uses_jwt and self.jwks_file is None and not self.jwks_url:
            raise ValueError("a jwt: source needs gate_jwks_file or gate_jwks_url")
        return self


class MetricsSettings(Section):
    """Metrics and health (/metrics, /healthz, /readyz). Every long-running process serves
    them on its own port; 0 picks a free port (logged as "metrics serving", with the token
    file). Every request needs the bearer token (Authorization header) from
    metrics_token_file; when unset, each process makes a random one at start and writes it
    (0600) to <metrics_token_dir or its working directory>/<service>-<port>.metrics-token."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "enabled": "metrics_enabled",
        "host": "metrics_host",
        "token_file": "metrics_token_file",
        "token_dir": "metrics_token_dir",
        "enforcer_port": "enforcer_metrics_port",
        "detect_port": "detect_metrics_port",
        "sink_port": "sink_metrics_port",
        "dashboard_port": "dashboard_metrics_port",
        "gate_port": "gate_metrics_port",
        "ssf_tx_port": "ssf_tx_metrics_port",
        "ssf_receiver_port": "ssf_receiver_metrics_port",
        "idp_port": "idp_metrics_port",
        "health_stall_s": "health_stall_s",
        "ready_max_lag_records": "ready_max_lag_records",
    }

    enabled: bool = Field(default=True, description="Serve metrics and health at all.")
    host: str = Field(
        default="127.0.0.1", max_length=255, description="The address the endpoints bind to."
    )
    token_file: Path | None = Field(
        default=None, description="File holding the bearer token every request needs."
    )
    token_dir: Path | None = Field(
        default=None,
        description="Where a process writes its random token when metrics_token_file is unset "
        "(default: its working directory).",
    )
    enforcer_port: int = Field(default=9464, ge=0, le=65535, description="The enforcer's port.")
    detect_port: int = Field(default=9465, ge=0, le=65535, description="The detectors' port.")
    sink_port: int = Field(default=9466, ge=0, le=65535, description="The PostgreSQL sink's port.")
    dashboard_port: int = Field(default=9467, ge=0, le=65535, description="The dashboard's port.")
    gate_port: int = Field(default=9468, ge=0, le=65535, description="The gateway check's port.")
    ssf_tx_port: int = Field(
        default=9469, ge=0, le=65535, description="The Shared Signals transmitter's port."
    )
    ssf_receiver_port: int = Field(
        default=9470, ge=0, le=65535, description="The Shared Signals receiver's port."
    )
    idp_port: int = Field(
        default=9471, ge=0, le=65535, description="The identity provider actuator's port."
    )
    health_stall_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="/healthz fails when the loop began no step for this long, or a rebuild "
        "of its clients has been retrying for this long (restores run a slice per loop turn: "
        "no excuse).",
    )
    ready_max_lag_records: int = Field(
        default=10_000,
        ge=0,
        description="/readyz: every owned partition restored and at most this many records behind.",
    )


class CaepSettings(Section):
    """CAEP / Shared Signals (optional): also publish revocations, revalidations, session
    starts and alerts as OpenID CAEP 1.0 Security Event Tokens on `sessionwarden.caep`,
    signed with a PEM key (RSA for RS256, EC P-256 for ES256)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "enabled": "caep_enabled",
        "issuer": "caep_issuer",
        "audiences": "caep_audiences",
        "signing_key_file": "caep_signing_key_file",
        "key_id": "caep_key_id",
        "allow_unsigned": "caep_allow_unsigned",
        "raw_session_audiences": "caep_raw_session_audiences",
        "detect_issuer": "detect_caep_issuer",
        "detect_signing_key_file": "detect_caep_signing_key_file",
        "detect_key_id": "detect_caep_key_id",
    }

    enabled: bool = Field(default=False, description="Publish the tokens.")
    issuer: str = Field(
        default="", max_length=512, description="The enforcer's issuer (the tokens' iss)."
    )
    audiences: str = Field(
        default="", max_length=4096, description="The tokens' audiences, comma separated."
    )
    signing_key_file: Path | None = Field(
        default=None, description="The enforcer's PEM signing key."
    )
    key_id: str | None = Field(
        default=None, max_length=256, description="The kid put in the tokens' header."
    )
    allow_unsigned: bool = Field(
        default=False,
        description='Allow unsigned tokens (alg "none"); for development only (anyone who can '
        "write the topic can forge an unsigned token): the enforcer warns at start.",
    )
    raw_session_audiences: str = Field(
        default="",
        max_length=4096,
        description="Session subjects are the keyed hash of the session id (log_salt, as in "
        "the log lines), never the live id itself; audiences listed here (comma separated, "
        "each one of caep_audiences) receive the raw session id instead. The enforcer warns "
        "at start.",
    )
    detect_issuer: str = Field(
        default="",
        max_length=512,
        description="The detectors' issuer for their risk-level-change tokens (from alerts), "
        "under a key of their own: the detectors never read caep_signing_key_file, so a "
        "compromised detector cannot sign the session events receivers trust the enforcer's "
        "issuer for. Off unless set; then the key is required (unless caep_allow_unsigned).",
    )
    detect_signing_key_file: Path | None = Field(
        default=None, description="The detectors' PEM signing key."
    )
    detect_key_id: str | None = Field(
        default=None, max_length=256, description="The kid of the detectors' tokens."
    )

    def audience_list(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.audiences.split(",") if a.strip())


class SsfTransmitterSettings(Section):
    """The Shared Signals transmitter (`sessionwarden ssf transmit`): revocations and
    revalidations as OpenID SSF 1.0 / CAEP 1.0 Security Event Tokens, pushed (RFC 8935) or
    polled (RFC 8936) per stream, with the SSF stream management API behind OAuth bearer
    tokens (`ssf.manage`, `ssf.read`). docs/SSF.md says how receivers join."""

    VARIABLES: ClassVar[dict[str, str]] = {
        name: f"ssf_tx_{name}"
        for name in (
            "host", "port", "issuer", "signing_key_file", "key_id", "state_dir", "group_id",
            "token_file", "introspection_url", "introspection_client_id",
            "introspection_secret_file", "default_subjects", "retention_s", "push_timeout_s",
            "push_backoff_max_s", "poll_wait_s", "max_streams", "max_streams_per_client",
            "allow_http_push", "allow_private_push",
        )
    }  # fmt: skip

    host: str = Field(
        default="127.0.0.1",
        max_length=255,
        description="The address it binds to (receivers must reach it; put TLS in front).",
    )
    port: int = Field(default=8792, ge=0, le=65535, description="Its port (0: a free one).")
    issuer: str = Field(
        default="",
        max_length=512,
        pattern=r"^$|^https?://[^\s?#]+$",
        description="The transmitter's issuer: the SETs' iss and the public base URL of its "
        "endpoints (https in production). Required.",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="PEM private key of the SETs (RSA 2048+ for RS256, or EC P-256 for ES256). "
        "Required: SSF tokens are always signed.",
    )
    key_id: str = Field(
        default="ssf-1", max_length=256, description="The kid of the key in the header and JWKS."
    )
    state_dir: Path = Field(
        default=Path("ssf-transmitter-state"),
        description="Where the streams, their subjects and their undelivered events are kept "
        "(SQLite, WAL); one transmitter process per directory.",
    )
    group_id: str = Field(
        default="",
        max_length=255,
        pattern=r"^$|^[A-Za-z0-9._-]+$",
        description="Its Kafka consumer group; empty: <group_id>-ssf.",
    )
    token_file: Path | None = Field(
        default=None,
        description="Bearer tokens of the receivers, one a line: `CLIENT_ID SHA256_HEX "
        "SCOPES` (scopes comma separated: ssf.manage, ssf.read). Hashes only, never tokens.",
    )
    introspection_url: str = Field(
        default="",
        max_length=1024,
        pattern=r"^$|^https?://\S+$",
        description="An OAuth 2.0 token introspection endpoint (RFC 7662) that vouches for "
        "bearer tokens not in the token file.",
    )
    introspection_client_id: str = Field(
        default="", max_length=256, description="The transmitter's client id there."
    )
    introspection_secret_file: Path | None = Field(
        default=None, description="File holding the transmitter's client secret there."
    )
    default_subjects: Literal["ALL", "NONE"] = Field(
        default="ALL",
        description="ALL: a new stream receives events about every subject; NONE: only "
        "about the subjects its receiver adds.",
    )
    retention_s: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="How long an event waits for delivery or acknowledgement (paused stream, "
        "receiver down) before it is dropped and counted.",
    )
    push_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Time one push may take in all, from connecting to the receiver's answer.",
    )
    push_backoff_max_s: float = Field(
        default=300.0,
        ge=1,
        description="Longest wait between retries of a push (exponential from 0.5 s).",
    )
    poll_wait_s: float = Field(
        default=20.0, ge=0, le=60, description="Longest wait of a long poll for new events."
    )
    max_streams: int = Field(default=100, ge=1, le=10000, description="Streams at most.")
    max_streams_per_client: int = Field(
        default=10,
        ge=1,
        le=10000,
        description="Streams one OAuth client may hold at most (its streams count against "
        "max_streams too): one client cannot take every stream and shut the others out.",
    )
    allow_http_push: bool = Field(
        default=False,
        description="Allow plain http push endpoints on other hosts than loopback (tokens "
        "and SETs then travel in clear): for development only.",
    )
    allow_private_push: bool = Field(
        default=False,
        description="Allow push endpoints on loopback and private addresses (RFC 1918, unique "
        "local, 100.64/10), checked on every push against what the name resolves to. "
        "Link-local, unspecified and multicast addresses are never pushed to.",
    )


class TrustedTransmitter(BaseModel):
    """One Shared Signals transmitter the receiver accepts Security Event Tokens from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=NAME, max_length=64, description="Its name: the source `ssf:<name>` of its events."
    )
    issuer: str = Field(min_length=1, max_length=512, description="Its `iss`.")
    jwks_uri: str = Field(
        default="",
        max_length=2048,
        pattern=r"^$|^https?://",
        description="Its JWKS; or give metadata_url and the JWKS is the one it names.",
    )
    metadata_url: str = Field(
        default="",
        max_length=2048,
        pattern=r"^$|^https?://",
        description="Its /.well-known/ssf-configuration (issuer and jwks_uri read from it).",
    )
    audience: str = Field(
        min_length=1, max_length=512, description="The `aud` its tokens must carry for us."
    )
    tenant: str = Field(
        min_length=1,
        max_length=128,
        description="The one tenant its events apply to; a token naming another is refused.",
    )
    delivery: Literal["push", "poll"] = Field(description="push (RFC 8935) or poll (RFC 8936).")
    push_token_file: Path | None = Field(
        default=None,
        description="push: the bearer token it must send to the push endpoint (a file).",
    )
    poll_url: str = Field(
        default="", max_length=2048, pattern=r"^$|^https?://", description="poll: its endpoint."
    )
    poll_token_file: Path | None = Field(
        default=None,
        description="poll: the bearer token we send to its endpoint (a file); or give the "
        "OAuth client credentials below.",
    )
    poll_token_url: str = Field(
        default="",
        max_length=2048,
        pattern=r"^$|^https?://",
        description="poll: an OAuth 2.0 token endpoint; the bearer token is an access token "
        "got there with the client-credentials grant, kept until shortly before it expires "
        "and fetched again after a 401.",
    )
    poll_client_id: str = Field(
        default="", max_length=256, description="poll: our client id at poll_token_url."
    )
    poll_client_secret_file: Path | None = Field(
        default=None, description="poll: the file holding that client's secret."
    )
    poll_scope: str = Field(
        default="",
        max_length=512,
        pattern=r"^[\x21\x23-\x5b\x5d-\x7e ]*$",
        description="poll: the scope asked for with the token (e.g. `ssf.read`); empty: none.",
    )
    risk_profiles: dict[str, str] = Field(
        default_factory=dict,
        max_length=256,
        description="Levels to the policy's risk profiles: `<namespace>:<level>` of a CAEP "
        "assurance-level-change (`nist-aal:aal1`), `risk:<level>` of a risk-level-change "
        "(`risk:high`), keys in lower case. A level not listed changes nothing.",
    )
    session_revoked_scope: Literal["session", "user"] = Field(
        default="session",
        description="What its CAEP session-revoked ends: `session`, the session it names; "
        "`user`, every live session of its user (a federated peer, whose sessions are not "
        "ours: a session of the user ending there ends the user's sessions here).",
    )

    @model_validator(mode="after")
    def _check(self) -> TrustedTransmitter:
        if not self.jwks_uri and not self.metadata_url:
            raise ValueError(f"transmitter {self.name}: needs jwks_uri or metadata_url")
        if self.delivery == "push" and self.push_token_file is None:
            raise ValueError(f"transmitter {self.name}: push needs push_token_file")
        if self.delivery == "poll":
            oauth = (self.poll_token_url, self.poll_client_id, self.poll_client_secret_file)
            if not self.poll_url or (self.poll_token_file is None) == (not all(oauth)):
                raise ValueError(
                    f"transmitter {self.name}: poll needs poll_url and either poll_token_file"
                    " or poll_token_url, poll_client_id and poll_client_secret_file"
                )
        for key, profile in self.risk_profiles.items():
            if key != key.lower() or ":" not in key or re.fullmatch(PROFILE, profile) is None:
                raise ValueError(f"transmitter {self.name}: risk_profiles entry {key!r}")
        return self


class SsfReceiverSettings(Section):
    """The Shared Signals receiver (`sessionwarden ssf receive`): Security Event Tokens pushed
    (RFC 8935) or polled (RFC 8936) from the configured transmitters are verified and turned
    into input events on auth.events. docs/SSF.md describes it."""

    VARIABLES: ClassVar[dict[str, str]] = {
        name: f"ssf_receiver_{name}"
        for name in (
            "host", "port", "transmitters", "iat_window_s", "leeway_s", "max_body_bytes",
            "jti_file", "jti_capacity", "poll_interval_s", "poll_max_events", "jwks_cache_s",
        )
    }  # fmt: skip

    host: str = Field(
        default="127.0.0.1", max_length=255, description="The address the push endpoint binds to."
    )
    port: int = Field(default=8791, ge=0, le=65535, description="Its port (0: a free one).")
    transmitters: tuple[TrustedTransmitter, ...] = Field(
        default=(),
        description="The transmitters (at most 256): an array of tables in the config file, "
        "or a JSON list in the environment; each has name, issuer, jwks_uri or metadata_url, "
        "audience, tenant, delivery (push: push_token_file; poll: poll_url and poll_token_file, "
        "or poll_token_url, poll_client_id, poll_client_secret_file and poll_scope), "
        "risk_profiles and session_revoked_scope.",
    )
    iat_window_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="A token issued longer ago than this is refused; its jti is remembered at "
        "least this long.",
    )
    leeway_s: float = Field(
        default=30.0, ge=0, le=600, description="Clock skew allowed on a token's `iat`."
    )
    max_body_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=16 << 20,
        description="Largest pushed token, and a tenth of the largest poll answer.",
    )
    jti_file: Path | None = Field(
        default=None,
        description="Where seen jtis are journalled, so replay protection survives a restart; "
        "empty: in memory only.",
    )
    jti_capacity: int = Field(
        default=1_000_000,
        ge=1,
        le=100_000_000,
        description="jtis remembered at most, shared equally by the transmitters' issuers; "
        "while an issuer's share is full, its new tokens are answered 503.",
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="Pause between polls that returned nothing."
    )
    poll_max_events: int = Field(
        default=100, ge=1, le=1000, description="maxEvents asked for in one poll."
    )
    jwks_cache_s: float = Field(
        default=300.0, gt=0, le=86_400, description="How long a fetched JWKS is used."
    )

    @field_validator("transmitters", mode="before")
    @classmethod
    def _from_json(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value) if value.strip() else ()
            except orjson.JSONDecodeError:
                raise ValueError("not a JSON list of transmitters") from None
        return value

    @field_validator("transmitters", mode="after")
    @classmethod
    def _distinct(cls, value: tuple[TrustedTransmitter, ...]) -> tuple[TrustedTransmitter, ...]:
        names = [t.name for t in value]
        if len(names) > 256:
            raise ValueError("at most 256 transmitters")
        if len(set(names)) != len(names):
            raise ValueError("two transmitters share a name")
        return value


class KeycloakSettings(Section):
    """Revocations out to Keycloak (`sessionwarden idp keycloak`): every revocation of a
    session of a listed realm (tenant = realm) ends that session in Keycloak through its admin
    REST API, with a service account (client credentials) whose secret is read from a file,
    once, when the settings are loaded; it never appears in repr, logs or error messages.
    docs/KEYCLOAK.md has the service account's role."""

    VARIABLES: ClassVar[dict[str, str]] = {
        name: f"keycloak_{name}"
        for name in (
            "url", "realms", "admin_realm", "client_id", "client_secret_file", "ca_file",
            "group_id", "timeout_s", "concurrency", "retry_base_s", "retry_max_s",
        )
    }  # fmt: skip

    url: str = Field(
        default="",
        max_length=2048,
        pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$",
        description="Keycloak's base URL (https, or http on a loopback host), e.g. "
        "https://sso.example.com. Empty: `sessionwarden idp keycloak` refuses to start.",
    )
    realms: str = Field(
        default="",
        max_length=4096,
        pattern=r"^[A-Za-z0-9._, -]*$",
        description="The realms whose sessions this Keycloak holds, comma separated; each is "
        "the tenant of its sessions' events. Revocations of other tenants are skipped.",
    )
    admin_realm: str = Field(
        default="",
        max_length=255,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="The realm of the service account's client. Empty: the revoked session's "
        "own realm (a client in each realm, the least power); `master` for one client that "
        "serves several realms.",
    )
    client_id: str = Field(
        default="sessionwarden",
        min_length=1,
        max_length=255,
        description="The service account's client id (client credentials grant).",
    )
    client_secret_file: Path | None = Field(
        default=None, description="File holding the service account's client secret."
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle for Keycloak's TLS certificate; empty: the system's.",
    )
    group_id: str = Field(
        default="sessionwarden-idp-keycloak",
        min_length=1,
        max_length=100,
        pattern=NAME,
        description="The actuator's consumer group (one per Keycloak).",
    )
    timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Time one request to Keycloak may take in all, connecting to answer.",
    )
    concurrency: int = Field(
        default=8, ge=1, le=64, description="Requests to Keycloak in flight at once."
    )
    retry_base_s: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="The first wait before a request is retried (Keycloak down, 5xx, 429, "
        "403); it doubles with each failure, with jitter.",
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, le=3600, description="The longest wait between two retries."
    )
    _client_secret: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_secret_file(self) -> KeycloakSettings:
        host = self.url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if self.url.startswith("http://") and not re.match(LOOPBACK, host):
            raise ValueError(
                "keycloak_url: plain http sends the client secret unencrypted; use https "
                "(http only on a loopback host)"
            )
        if self.retry_max_s < self.retry_base_s:
            raise ValueError("keycloak_retry_max_s: smaller than keycloak_retry_base_s")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"keycloak_ca_file: no such file: {self.ca_file}")
        self._client_secret = _read_secret("keycloak_client_secret_file", self.client_secret_file)
        return self

    @property
    def client_secret(self) -> str | None:
        """The client secret, read from ``client_secret_file`` at load (None without it)."""
        return self._client_secret

    def realm_list(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.realms.split(",") if r.strip())


class LoggingSettings(Section):
    """Log lines, of every process."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "salt": "log_salt",
        "format": "log_format",
        "level": "log_level",
        "allow_raw_session_ids": "sessions_allow_raw_ids",
    }

    salt: str = Field(
        default="",
        max_length=256,
        description="Salt for hashing session ids in log lines; empty means a random salt "
        "per process.",
    )
    format: str = Field(default="json", pattern=r"^(json|text)$", description="json or text.")
    level: str = Field(
        default="INFO",
        pattern=r"^(DEBUG|INFO|WARNING|ERROR)$",
        description="DEBUG, INFO, WARNING or ERROR.",
    )
    allow_raw_session_ids: bool = Field(
        default=False,
        description="Whether `sessionwarden sessions --raw-ids` may print raw session ids; "
        "otherwise it prints their salted hash (log_salt), as the log lines do. A raw id is "
        "a credential until its session ends: set this only where the output is kept as "
        "safely as the session store.",
    )


SECTIONS: dict[str, type[Section]] = {
    "kafka": KafkaSettings,
    "topics": TopicNames,
    "enforcer": EnforcerSettings,
    "detect": DetectSettings,
    "sink": SinkSettings,
    "dashboard": DashboardSettings,
    "gate": GateSettings,
    "metrics": MetricsSettings,
    "caep": CaepSettings,
    "ssf_transmitter": SsfTransmitterSettings,
    "ssf_receiver": SsfReceiverSettings,
    "keycloak": KeycloakSettings,
    "logging": LoggingSettings,
}
"""Every section, by its attribute on :class:`Settings`."""

ROOT_VARIABLES = ("policy_file",)
"""The settings every process reads, kept on :class:`Settings` itself."""


@dataclass(frozen=True)
class Variable:
    """One setting: its flat name, where it lives, and the environment names that set it."""

    name: str
    section: str  # "" for a field of Settings itself
    field: str
    info: FieldInfo

    @property
    def environment(self) -> tuple[str, ...]:
        alias = self.info.validation_alias
        named = [str(c) for c in getattr(alias, "choices", ()) if str(c).isupper()]
        own = f"{ENV_PREFIX}{self.name.upper()}"
        return (*named, *([] if own in named else [own]))


def variables() -> Iterator[Variable]:
    """Every setting, section by section, in declaration order."""
    for name in ROOT_VARIABLES:
        yield Variable(name, "", name, Settings.model_fields[name])
    for section, model in SECTIONS.items():
        for field, info in model.model_fields.items():
            if field in model.VARIABLES:
                yield Variable(model.VARIABLES[field], section, field, info)


class Settings(BaseSettings):
    """Everything a Sessionwarden process needs to run; validated once, then frozen.

    Build it from flat setting names (``load_settings(batch_size=100)``,
    ``Settings(topic_prefix="t.")``) or whole sections (``Settings(topics=TopicNames(...))``);
    read it by section (``settings.enforcer.batch_size``)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    policy_file: Path | None = Field(
        default=None,
        description="The policy (TOML) the enforcer, the detectors and the revocation "
        "listener read; empty means the shipped default policy.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicNames = Field(default_factory=TopicNames)
    enforcer: EnforcerSettings = Field(default_factory=EnforcerSettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    caep: CaepSettings = Field(default_factory=CaepSettings)
    ssf_transmitter: SsfTransmitterSettings = Field(default_factory=SsfTransmitterSettings)
    ssf_receiver: SsfReceiverSettings = Field(default_factory=SsfReceiverSettings)
    keycloak: KeycloakSettings = Field(default_factory=KeycloakSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @model_validator(mode="before")
    @classmethod
    def _into_sections(cls, data: Any) -> Any:
        """Flat setting names go into their sections; flat values beat a whole section's."""
        if not isinstance(data, Mapping):
            return data
        out: dict[str, Any] = {}
        flat: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            where = _FLAT.get(key)
            if where is None:
                out[key] = value
            else:
                flat.setdefault(where[0], {})[where[1]] = value
        for section, values in flat.items():
            if section == "":
                out.update(values)
                continue
            given = out.get(section)
            if isinstance(given, Section):
                given = given.model_dump(exclude=set(_TOPIC_SUFFIXES), exclude_unset=False) | (
                    given.renamed() if isinstance(given, TopicNames) else {}
                )
            out[section] = {**(given if isinstance(given, Mapping) else {}), **values}
        return out

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.policy_file is not None and not self.policy_file.is_file():
            raise ValueError(f"policy_file: no such file: {self.policy_file}")
        return self

    def replace(self, **values: Any) -> Settings:
        """A copy with some settings changed (flat names or whole sections), validated
        again; the environment is not read again."""
        current: dict[str, Any] = {
            name: getattr(self, name) for name in (*ROOT_VARIABLES, *SECTIONS)
        }
        reading = _READ_ENVIRONMENT.set(False)
        try:
            return type(self).model_validate({**current, **values})
        except ValidationError as exc:
            raise _config_error(exc) from exc
        finally:
            _READ_ENVIRONMENT.reset(reading)

    @property
    def transactional_id(self) -> str:
        """Stable per instance, so a restarted instance fences and aborts its predecessor."""
        return f"{self.topics.prefix}{self.enforcer.group_id}-{self.enforcer.instance_id}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the config file (passed as init values), which beats defaults.
        if not _READ_ENVIRONMENT.get():
            return (init_settings,)
        return (_Environment(settings_cls), init_settings)


_READ_ENVIRONMENT: ContextVar[bool] = ContextVar("read_environment", default=True)
"""False while Settings.replace validates a copy: the copy keeps what the original read."""


class _Environment(PydanticBaseSettingsSource):
    """``SESSIONWARDEN_<NAME>`` (any case) for every flat setting name, and the
    conventional ``KAFKA_BOOTSTRAP_SERVERS`` before ``SESSIONWARDEN_BOOTSTRAP_SERVERS``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {k.upper(): v for k, v in os.environ.items()}
        found: dict[str, Any] = {}
        for variable in variables():
            for name in variable.environment:
                if name in environ:
                    found[variable.name] = environ[name]
                    break
        return found


_FLAT: dict[str, tuple[str, str]] = {v.name: (v.section, v.field) for v in variables()}
_FLAT.update({"KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers")})
_FLAT.update({"SESSIONWARDEN_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers")})
_NAMES: dict[tuple[str, str], str] = {(v.section, v.field): v.name for v in variables()}

FlatSettings = create_model(  # type: ignore[call-overload]
    "FlatSettings",
    __config__=ConfigDict(frozen=True, extra="forbid"),
    **{v.name: (v.info.annotation, v.info) for v in variables()},
)
"""Every setting under its flat name, as the environment and the config file name them
(for references and checks; the processes read :class:`Settings`)."""


def flat_location(loc: Sequence[int | str]) -> str:
    """An error's location by the setting's flat name: ``("kafka", "partitions")`` ->
    ``"partitions"``; an error of a whole section or of all settings -> ``""``."""
    if loc and loc[0] in SECTIONS:
        if len(loc) == 1:
            return ""
        name = _NAMES.get((str(loc[0]), str(loc[1])))
        if name is not None:
            return dotted([name, *loc[2:]])
        if str(loc[1]) in ("KAFKA_BOOTSTRAP_SERVERS", "SESSIONWARDEN_BOOTSTRAP_SERVERS"):
            return str(loc[1])
    return dotted(loc)


def _config_error(exc: ValidationError) -> ConfigError:
    lines = error_lines(exc, root="settings", where=flat_location)
    return ConfigError("invalid settings:\n  " + "\n  ".join(lines))


def _read_secret(name: str, path: Path | None) -> str | None:
    """The first line of a secret file (trailing newline stripped); errors never quote it."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}: {path} is not UTF-8 text") from None
    secret = text.splitlines()[0] if text else ""
    if not secret:
        raise ValueError(f"{name}: {path} is empty")
    return secret


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once; every problem is reported as one ConfigError naming the fields."""
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            values = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise _config_error(exc) from exc
