import socket

import pytest

from stream import devbroker
from stream.devbroker import DevBroker, DevBrokerError


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([b"\xf8" * 16, b"\x00" * 16])  # the first encodes as "-..."
    monkeypatch.setattr(devbroker.secrets, "token_bytes", lambda n: next(draws))

    cluster_id = devbroker._new_cluster_id()

    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAA"


def test_a_busy_port_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devbroker, "fetch_kafka", lambda: None)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(DevBrokerError, match=f"port {port}"):
            DevBroker(port=port).start()
