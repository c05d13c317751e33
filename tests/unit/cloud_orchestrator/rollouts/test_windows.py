"""--window [SELECTOR@]HH:MM-HH:MM: the first matching selector's window applies."""

from __future__ import annotations

import pytest

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.rollouts.windows import (
    parse_windows,
    window_for,
    windows_from_json,
    windows_to_json,
)


def test_the_first_matching_selector_decides_and_no_match_means_any_time() -> None:
    rules = parse_windows(["site=berlin@02:00-04:00", "hardware=rpi4@23:00-01:00"])
    assert str(window_for(rules, "gw-1", {"site": "berlin", "hardware": "rpi4"})) == "02:00-04:00"
    assert str(window_for(rules, "gw-2", {"site": "paris", "hardware": "rpi4"})) == "23:00-01:00"
    assert window_for(rules, "gw-3", {"site": "paris"}) is None


def test_a_bare_window_applies_to_every_gateway_and_survives_json() -> None:
    rules = parse_windows(["01:00-02:00"])
    assert windows_to_json(rules) == '[["all", "01:00-02:00"]]'
    assert windows_from_json(windows_to_json(rules)) == rules
    assert windows_to_json(()) == "" and windows_from_json("") == ()


def test_a_bad_window_names_the_flag_and_the_format() -> None:
    with pytest.raises(InvalidRequest, match=r"--window 'site=x@2-4': .*HH:MM-HH:MM"):
        parse_windows(["site=x@2-4"])
