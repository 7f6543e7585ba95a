"""Runtime settings: one frozen object read from the environment once at start-up.

Every setting has an environment variable (listed in the README) and most commands
accept a flag that overrides it. Secrets are masked whenever settings are printed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from stream.attributes import ATTRIBUTES

DEFAULT_INPUT_TOPIC = "conversations"
DEFAULT_DEAD_LETTER_TOPIC = "deadLetters"
THIRTY_DAYS_SECONDS = 30 * 24 * 3600

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a value the service cannot use."""


@dataclass(frozen=True)
class KafkaSecurity:
    """How the service authenticates to Kafka and encrypts the connection."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)

    @property
    def uses_ssl(self) -> bool:
        """True when the connection is encrypted with TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """True when the client authenticates with SASL."""
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class Settings:
    """Everything the worker and the commands need to know, validated."""

    bootstrap_servers: str = "localhost:9092"
    app_id: str = "engagement-stream"
    topic_prefix: str = ""
    input_topic: str = DEFAULT_INPUT_TOPIC
    # The API version of records on the input topic when a record has no
    # apiVersion header; None lets the decoder infer it.
    input_api_version: int | None = None
    dead_letter_topic: str = DEFAULT_DEAD_LETTER_TOPIC
    # attribute key (customerInfo, purchase, ...) -> topic name, before the prefix
    attribute_topics: Mapping[str, str] = field(default_factory=dict)
    # attribute key -> pinned published schema version; absent means the newest
    published_versions: Mapping[str, int] = field(default_factory=dict)
    dedupe_retention_seconds: int = THIRTY_DAYS_SECONDS
    http_port: int = 8080
    broker_timeout_seconds: float = 120.0
    ready_stall_seconds: float = 120.0
    batch_size: int = 500
    batch_within_seconds: float = 0.05
    data_dir: str = "/tmp/engagement-stream"
    log_level: str = "INFO"
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    def topic(self, name: str) -> str:
        """Return a topic name with the common prefix applied."""
        return f"{self.topic_prefix}{name}"

    @property
    def input_topic_name(self) -> str:
        """The raw conversation record topic, prefixed."""
        return self.topic(self.input_topic)

    @property
    def dead_letter_topic_name(self) -> str:
        """The dead letter queue topic, prefixed."""
        return self.topic(self.dead_letter_topic)

    def attribute_topic_name(self, attribute: str) -> str:
        """The typed output topic of one attribute, prefixed."""
        name = self.attribute_topics.get(attribute, ATTRIBUTES[attribute].topic)
        return self.topic(name)

    def all_topic_names(self) -> list[str]:
        """Input, every typed output and the dead letter topic, prefixed."""
        names = [self.input_topic_name]
        names += [self.attribute_topic_name(key) for key in ATTRIBUTES]
        names.append(self.dead_letter_topic_name)
        return names

    def replace(self, **changes: object) -> Settings:
        """Return a copy with some settings changed (flags over environment)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> dict[str, object]:
        """Settings as a flat dict for the start-up log, secrets masked."""
        described = dataclasses.asdict(self)
        security = described["security"]
        for secret in ("sasl_password", "ssl_key_password"):
            if security.get(secret):
                security[secret] = "***"
        return described


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from environment variables, validating each one.

    Raises:
        SettingsError: a variable holds a value that cannot be used; the message
            names the variable, what it holds and what is accepted.
    """
    env = os.environ if env is None else env
    defaults = Settings()
    _check_names(env)

    attribute_topics = {}
    published_versions = {}
    for key, spec in ATTRIBUTES.items():
        env_name = f"ES_TOPIC_{spec.env_suffix}"
        if env.get(env_name):
            attribute_topics[key] = env[env_name]
        version_name = f"ES_SCHEMA_VERSION_{spec.env_suffix}"
        if env.get(version_name):
            published_versions[key] = _int(env, version_name, 1)

    return Settings(
        bootstrap_servers=env.get(
            "KAFKA_BOOTSTRAP_SERVERS", defaults.bootstrap_servers
        ),
        app_id=env.get("ES_APP_ID", defaults.app_id),
        topic_prefix=env.get("ES_TOPIC_PREFIX", defaults.topic_prefix),
        input_topic=env.get("ES_INPUT_TOPIC", defaults.input_topic),
        input_api_version=_api_version(env.get("ES_INPUT_API_VERSION", "")),
        dead_letter_topic=env.get("ES_DEAD_LETTER_TOPIC", defaults.dead_letter_topic),
        attribute_topics=attribute_topics,
        published_versions=published_versions,
        dedupe_retention_seconds=_int(
            env, "ES_DEDUPE_RETENTION_SECONDS", defaults.dedupe_retention_seconds
        ),
        http_port=_int(env, "ES_HTTP_PORT", defaults.http_port, low=0, high=65535),
        broker_timeout_seconds=_float(
            env, "ES_BROKER_TIMEOUT_SECONDS", defaults.broker_timeout_seconds, 0.001
        ),
        ready_stall_seconds=_float(
            env, "ES_READY_STALL_SECONDS", defaults.ready_stall_seconds, 0.001
        ),
        batch_size=_int(env, "ES_BATCH_SIZE", defaults.batch_size),
        batch_within_seconds=_float(
            env, "ES_BATCH_WITHIN_SECONDS", defaults.batch_within_seconds
        ),
        data_dir=env.get("ES_DATA_DIR", defaults.data_dir),
        log_level=_log_level(env.get("ES_LOG_LEVEL", defaults.log_level)),
        security=_security(env),
    )


def parse_bool(name: str, text: str) -> bool:
    """Parse a boolean setting; "false" is false (unlike ``bool("false")``)."""
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise SettingsError(f"{name}={text!r}: expected true or false")


def _security(env: Mapping[str, str]) -> KafkaSecurity:
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise SettingsError(
            f"KAFKA_SECURITY_PROTOCOL={protocol!r}: expected one of "
            f"{', '.join(SECURITY_PROTOCOLS)}"
        )
    mechanism = env.get("KAFKA_SASL_MECHANISM") or None
    if protocol.startswith("SASL_"):
        mechanism = (mechanism or "PLAIN").upper()
        if mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"KAFKA_SASL_MECHANISM={mechanism!r}: expected one of "
                f"{', '.join(SASL_MECHANISMS)}"
            )
    if protocol.startswith("SASL_") and not (
        env.get("KAFKA_SASL_USERNAME") and env.get("KAFKA_SASL_PASSWORD")
    ):
        raise SettingsError(
            f"KAFKA_SECURITY_PROTOCOL={protocol}: expected KAFKA_SASL_USERNAME and "
            "KAFKA_SASL_PASSWORD to be set as well"
        )
    return KafkaSecurity(
        protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
        sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
        ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
        ssl_certfile=env.get("KAFKA_SSL_CERTFILE") or None,
        ssl_keyfile=env.get("KAFKA_SSL_KEYFILE") or None,
        ssl_key_password=env.get("KAFKA_SSL_KEY_PASSWORD") or None,
    )


def _api_version(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if text not in ("1", "2"):
        raise SettingsError(f"ES_INPUT_API_VERSION={text!r}: expected 1, 2 or empty")
    return int(text)


def _int(
    env: Mapping[str, str],
    name: str,
    default: int,
    low: int = 1,
    high: int | None = None,
) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected a whole number") from None
    if value < low or (high is not None and value > high):
        upper = f" and {high}" if high is not None else " or more"
        raise SettingsError(f"{name}={text!r}: expected {low}{upper}")
    return value


def _float(
    env: Mapping[str, str], name: str, default: float, low: float = 0.0
) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected a number") from None
    if not value >= low or value == float("inf"):
        raise SettingsError(f"{name}={text!r}: expected a finite number above {low:g}")
    return value


def _check_names(env: Mapping[str, str]) -> None:
    """Refuse per-attribute variables that name no attribute (a typo is silent)."""
    known = {spec.env_suffix for spec in ATTRIBUTES.values()}
    for name in env:
        for prefix in ("ES_TOPIC_", "ES_SCHEMA_VERSION_"):
            suffix = name[len(prefix) :] if name.startswith(prefix) else None
            if suffix is not None and suffix not in known and name != "ES_TOPIC_PREFIX":
                raise SettingsError(
                    f"{name}: no attribute type {suffix!r}; expected one of "
                    f"{', '.join(sorted(known))}"
                )


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise SettingsError(
            f"ES_LOG_LEVEL={text!r}: expected one of {', '.join(LOG_LEVELS)}"
        )
    return level
