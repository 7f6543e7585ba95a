from stream.cli import main


def test_a_device_is_refused_instead_of_read_without_end(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["decode", "/dev/zero"]) == 2
    assert "a device, not a file of records" in capsys.readouterr().err
