import pytest

from stream.decoder import count_unknown_fields


@pytest.mark.parametrize(
    ("event", "key", "unknown"),
    [
        # nested: event level, wrapper level and inner level all count
        (
            {
                "sdeType": "LEAD",
                "serverTimeStamp": 1,
                "traceId": "t",
                "lead": {
                    "serverTimeStamp": 1,
                    "extra": 1,
                    "lead": {"topic": "x", "q": 2},
                },
            },
            "lead",
            3,
        ),
        # nested type in flat form: the wrapper holds the fields
        (
            {"lead": {"serverTimeStamp": 1, "topic": "x", "value": 2, "odd": 0}},
            "lead",
            1,
        ),
        # flat type: stamps and fields are known, a second attribute object too
        (
            {
                "sdeType": "CART_STATUS",
                "cartStatus": {"serverTimeStamp": 1, "total": 2, "products": []},
                "lead": {},
            },
            "cartStatus",
            0,
        ),
        # email and phone exist only inside contacts
        (
            {"personalInfo": {"personalInfo": {"name": "a", "email": "e"}}},
            "personalInfo",
            1,
        ),
    ],
)
def test_unknown_keys_are_counted_where_they_are_dropped(
    event: dict[str, object], key: str, unknown: int
) -> None:
    assert count_unknown_fields(event, key) == unknown
