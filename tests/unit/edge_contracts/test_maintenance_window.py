"""Maintenance windows: HH:MM-HH:MM in local time, wrapping midnight."""

from __future__ import annotations

import pytest

from edge_contracts.maintenance_window import MaintenanceWindow, WindowError, local_seconds_of_day

H = 3600


def test_a_window_contains_its_start_not_its_end() -> None:
    window = MaintenanceWindow.parse("02:00-04:00")
    assert str(window) == "02:00-04:00"
    assert window.contains(2 * H) and window.contains(4 * H - 1) and not window.contains(4 * H)
    assert window.seconds_until_open(2 * H - 5) == 5
    assert window.seconds_until_open(5 * H) == 21 * H
    assert window.seconds_until_open(3 * H) == 0


def test_a_window_ending_before_it_starts_wraps_midnight() -> None:
    window = MaintenanceWindow.parse(" 22:30 - 01:00 ")
    assert window.contains(23 * H) and window.contains(0) and window.contains(H - 1)
    assert not window.contains(H) and not window.contains(12 * H)
    assert window.seconds_until_open(22 * H) == 30 * 60


@pytest.mark.parametrize("text", ["2-4", "02:00", "24:00-01:00", "02:60-03:00", "03:00-03:00"])
def test_a_malformed_window_says_what_is_expected(text: str) -> None:
    with pytest.raises(WindowError, match=r"HH:MM-HH:MM|empty"):
        MaintenanceWindow.parse(text)


def test_local_seconds_of_day_applies_the_offset() -> None:
    midnight_utc = 1_700_006_400.0  # 2023-11-15T00:00:00Z
    assert local_seconds_of_day(0, midnight_utc + 90) == 90
    assert local_seconds_of_day(2 * H, midnight_utc) == 2 * H
    assert local_seconds_of_day(-H, midnight_utc) == 23 * H
