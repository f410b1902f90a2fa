"""kd_rl._validate: the checks every module's settings go through."""

import pytest

from kd_rl import _validate
from kd_rl.errors import KdRlError


def test_seeds_are_32_bit_and_named():
    assert _validate.check_seed(0) == 0 and _validate.check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 12345678901234567890123):
        with pytest.raises(
            KdRlError, match=f"seed must be an int from 0 to 4294967295, got {bad}|seed must be an int >= 0"
        ):
            _validate.check_seed(bad)


def test_memory_checks_say_the_bytes_and_what_is_available(monkeypatch):
    monkeypatch.setattr(_validate, "available_memory_bytes", lambda: 8_000_000_000)
    _validate.check_memory("--buffer-size 1000", 7_999_999_999)  # fits: nothing said
    with pytest.raises(KdRlError) as info:
        _validate.check_memory("--buffer-size 10**12", 2.4e13)
    assert str(info.value) == (
        "--buffer-size 10**12 would take 2.4e+13 bytes (24.0 TB) of memory; this machine has 8.0 GB available: "
        "choose a smaller value"
    )


def test_available_memory_is_read_from_the_machine():
    available = _validate.available_memory_bytes()
    assert 2**20 < available < 2**60


@pytest.mark.parametrize(
    "nbytes, text", [(999, "999 bytes"), (1500, "1.5 kB"), (2.4e13, "24.0 TB"), (5e18, "5000.0 PB")]
)
def test_format_bytes(nbytes, text):
    assert _validate.format_bytes(nbytes) == text
