"""Kafka client options derived from the settings, for aiokafka and for faust.

Both clients take the same facts (bootstrap servers, TLS material, SASL user) in
different shapes; this module is the one place that translates them.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from stream.settings import KafkaSecurity, Settings


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """Build the TLS context for an encrypted connection, or None for plain text."""
    if not security.uses_ssl:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=security.ssl_cafile,
        certfile=security.ssl_certfile,
        keyfile=security.ssl_keyfile,
        password=security.ssl_key_password,
    )
    return context


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka client the service creates."""
    security = settings.security
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": security.protocol,
    }
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
    if security.uses_sasl:
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = security.sasl_password
    return options


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """The ``broker`` and ``broker_credentials`` settings of the faust app."""
    security = settings.security
    servers = ";".join(
        f"kafka://{server.strip()}"
        for server in settings.bootstrap_servers.split(",")
        if server.strip()
    )
    options: dict[str, Any] = {"broker": servers}

    context = ssl_context(security)
    if security.uses_sasl:
        options["broker_credentials"] = faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            mechanism=security.sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options
