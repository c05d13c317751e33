"""DesiredSnapshot: one snapshot answers every gateway, pins over assignments."""

from __future__ import annotations

from cloud_orchestrator.fleet.desired import AssignmentRule, DesiredSnapshot, DesiredVersion
from cloud_orchestrator.fleet.selector import Selector
from cloud_orchestrator.registry.store import VersionInfo


def info(model: str, version: str) -> VersionInfo:
    return VersionInfo(
        model, version, f"sha-{version}", 10 * int(version), "", "", {}, [], "", "", 0.0
    )


def snapshot(**pins: dict[str, tuple[str, str, str, str]]) -> DesiredSnapshot:
    return DesiredSnapshot(
        assignments=(
            AssignmentRule("gray", Selector.parse("all"), "2", "ACTIVATE"),
            AssignmentRule("gray", Selector.parse("site=paris"), "latest", "STAGE"),
            AssignmentRule("digits", Selector.parse("hardware!=rpi4"), "1", "SHADOW"),
        ),
        pins=pins,
        labels={},
        latest={"gray": info("gray", "3")},
        versions={("gray", "2"): info("gray", "2"), ("digits", "1"): info("digits", "1")},
    )


def test_the_newest_matching_assignment_wins_per_model() -> None:
    berlin = snapshot().desired("gw-1", {"site": "berlin", "hardware": "rpi4"})
    assert berlin == [DesiredVersion("gray", "2", "sha-2", 20, "ACTIVATE")]
    paris = snapshot().desired("gw-2", {"site": "paris", "hardware": "jetson"})
    assert paris == [
        DesiredVersion("digits", "1", "sha-1", 10, "SHADOW"),
        DesiredVersion("gray", "3", "sha-3", 30, "STAGE"),
    ]


def test_a_pin_wins_and_an_unknown_version_is_asked_for_without_a_bundle() -> None:
    pinned = snapshot(**{"gw-1": {"gray": ("0", "r-1", "ACTIVATE", "")}})
    assert pinned.desired("gw-1", {"hardware": "rpi4"}) == [
        DesiredVersion("gray", "0", "", 0, "ACTIVATE", "r-1")
    ]
    assert pinned.desired("gw-9", {"hardware": "rpi4"})[0].version == "2"


def test_latest_of_an_unpublished_model_asks_for_nothing() -> None:
    empty = DesiredSnapshot(
        (AssignmentRule("new", Selector.parse("all"), "latest", "ACTIVATE"),), {}, {}, {}
    )
    assert empty.desired("gw-1", {}) == []


def test_a_pin_carries_its_rollout_mode_and_maintenance_window() -> None:
    pinned = snapshot(**{"gw-1": {"gray": ("2", "r-2", "SHADOW", "02:00-04:00")}})
    assert pinned.desired("gw-1", {"hardware": "rpi4"}) == [
        DesiredVersion("gray", "2", "sha-2", 20, "SHADOW", "r-2", "02:00-04:00")
    ]
