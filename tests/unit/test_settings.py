import pytest

from stream.settings import SettingsError, from_env, parse_bool


def test_defaults_name_every_topic() -> None:
    settings = from_env({})
    assert settings.all_topic_names() == [
        "conversations",
        "customerInfo",
        "personalInfo",
        "cartStatus",
        "purchases",
        "viewedProducts",
        "marketingCampaignInfo",
        "searchContent",
        "visitorErrors",
        "leads",
        "serviceActivities",
        "deadLetters",
    ]
    assert settings.input_api_version is None
    assert settings.dedupe_retention_seconds == 30 * 24 * 3600


def test_prefix_and_overrides_apply_to_every_name() -> None:
    settings = from_env(
        {
            "ES_TOPIC_PREFIX": "prod.",
            "ES_TOPIC_PURCHASE": "orders",
            "ES_DEAD_LETTER_TOPIC": "dlq",
            "ES_INPUT_TOPIC": "raw",
        }
    )
    assert settings.input_topic_name == "prod.raw"
    assert settings.attribute_topic_name("purchase") == "prod.orders"
    assert settings.attribute_topic_name("lead") == "prod.leads"
    assert settings.dead_letter_topic_name == "prod.dlq"


def test_schema_pins_and_api_version() -> None:
    settings = from_env({"ES_SCHEMA_VERSION_LEAD": "1", "ES_INPUT_API_VERSION": "2"})
    assert settings.published_versions == {"lead": 1}
    assert settings.input_api_version == 2


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ES_INPUT_API_VERSION", "3", "expected 1, 2 or empty"),
        ("ES_HTTP_PORT", "eighty", "expected a whole number"),
        ("ES_BATCH_WITHIN_SECONDS", "soon", "expected a number"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS", "expected one of PLAINTEXT"),
        ("ES_HTTP_PORT", "99999", "expected 0 and 65535"),
        ("ES_BATCH_SIZE", "0", "expected 1 or more"),
        ("ES_DEDUPE_RETENTION_SECONDS", "-5", "expected 1 or more"),
        ("ES_BATCH_WITHIN_SECONDS", "-1", "expected a finite number above 0"),
        ("ES_BROKER_TIMEOUT_SECONDS", "0", "expected a finite number above"),
        ("ES_LOG_LEVEL", "verbose", "expected one of DEBUG"),
        ("ES_TOPIC_PURCHASES", "orders", "no attribute type 'PURCHASES'"),
        ("ES_SCHEMA_VERSION_lead", "1", "no attribute type 'lead'"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        from_env({name: value})
    assert name in str(error.value)
    assert message in str(error.value)


def test_sasl_defaults_to_plain_and_checks_the_mechanism() -> None:
    user = {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
    settings = from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", **user})
    assert settings.security.protocol == "SASL_SSL"
    assert settings.security.sasl_mechanism == "PLAIN"
    assert settings.security.uses_ssl and settings.security.uses_sasl
    with pytest.raises(SettingsError, match="KAFKA_SASL_MECHANISM"):
        from_env(
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "MD5"}
        )


def test_secrets_are_masked_in_the_description() -> None:
    settings = from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_USERNAME": "svc",
            "KAFKA_SASL_PASSWORD": "hunter2",
            "KAFKA_SSL_KEY_PASSWORD": "k3y",
        }
    )
    described = settings.describe()
    assert "hunter2" not in repr(described) and "k3y" not in repr(described)
    assert described["security"]["sasl_password"] == "***"
    assert described["security"]["sasl_username"] == "svc"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("FALSE", False), ("0", False), ("yes", True)]
)
def test_booleans_are_parsed_not_truthy(text: str, value: bool) -> None:
    assert parse_bool("X", text) is value


def test_unknown_boolean_is_an_error() -> None:
    with pytest.raises(SettingsError):
        parse_bool("X", "maybe")
