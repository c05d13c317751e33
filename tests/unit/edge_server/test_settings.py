"""Settings: six sections, help beside every field, one set of flat names for flags,
environment variables and config files, and every check named in its message."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from edge_server.cli import build_parser
from edge_server.settings import (
    FIELD_HELP,
    SECTION_OF,
    SECTIONS,
    Settings,
    load_settings,
    settings_to_json,
)


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "edge.json"
    config.write_text(json.dumps({"grpc_port": 1111, "http_port": 2222, "max_queue_size": 7}))
    env = {"EDGE_GRPC_PORT": "3333", "EDGE_TRUSTED_KEYS": "a.pub,b.pub"}
    settings = load_settings({"grpc_port": "4444"}, environ=env, config_file=config)
    assert settings.server.grpc_port == 4444  # flag beats env and file
    assert settings.server.http_port == 2222  # file beats default
    assert settings.admission.max_queue_size == 7
    assert settings.lifecycle.trusted_keys == (Path("a.pub"), Path("b.pub"))
    assert load_settings({}, environ=env).server.grpc_port == 3333  # env beats default
    assert load_settings({}, environ={}).server.grpc_port == 50051


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"grpc_port": "70000"}, "grpc_port must be 0..65535"),
        ({"tls_cert": "c.pem"}, "tls_cert and tls_key must be given together"),
        ({"graph_optimization": "turbo"}, "graph_optimization must be one of"),
        ({"pinned_versions": "digits"}, "is not NAME=VERSION"),
        ({"no_such_setting": "1"}, "unknown setting(s): no_such_setting"),
        ({"batching": "maybe"}, "use true or false"),
    ],
)
def test_bad_settings_are_named(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_settings(values, environ={})
    assert fragment in str(caught.value)


def test_the_sections_are_the_documented_six_and_names_are_unique() -> None:
    assert list(SECTIONS) == ["server", "runtime", "admission", "lifecycle", "cloud", "feedback"]
    names = [f.name for kind in SECTIONS.values() for f in fields(kind)]
    assert len(names) == len(set(names)) == len(SECTION_OF)
    assert SECTION_OF["max_queue_size"] == "admission"
    assert SECTION_OF["rollback_window_seconds"] == "lifecycle"
    assert SECTION_OF["orchestrator"] == "cloud"
    assert SECTION_OF["outbox_max_bytes"] == "feedback"


def test_every_field_has_help_beside_it_and_in_help_output() -> None:
    text = build_parser().format_help()
    for kind in SECTIONS.values():
        for f in fields(kind):
            assert len(f.metadata.get("help", "")) > 10, f.name
            assert FIELD_HELP[f.name] == f.metadata["help"]
            assert "--" + f.name.replace("_", "-") in text
    for section in SECTIONS:
        assert f"{section} settings:" in text


def test_from_values_places_each_name_in_its_section() -> None:
    settings = Settings.from_values(grpc_port=0, max_queue_size=5, feedback_bucket_seconds=9)
    assert settings.server.grpc_port == 0
    assert settings.admission.max_queue_size == 5
    assert settings.feedback.feedback_bucket_seconds == 9
    assert settings.runtime == Settings().runtime  # untouched sections keep their defaults
    with pytest.raises(ValueError, match=r"unknown setting\(s\): grpc_prot"):
        Settings.from_values(grpc_prot=1)


def test_replace_is_checked_like_any_other_construction() -> None:
    settings = Settings.from_values(max_queue_size=5)
    assert settings.replace(max_queue_size=6).admission.max_queue_size == 6
    assert settings.admission.max_queue_size == 5  # frozen: the original is unchanged
    with pytest.raises(ValueError, match="max_queue_size must be >= 1"):
        settings.replace(max_queue_size=0)


def test_problems_of_several_sections_are_reported_together() -> None:
    with pytest.raises(ValueError) as caught:
        Settings.from_values(grpc_port=-1, max_batch_size=0, feedback_bucket_seconds=0)
    message = str(caught.value)
    for fragment in (
        "grpc_port must be 0..65535",
        "max_batch_size must be 1..1024",
        "feedback_bucket_seconds must be 1..86400",
    ):
        assert fragment in message


def test_cross_section_checks() -> None:
    with pytest.raises(ValueError, match="cannot be combined with --orchestrator"):
        Settings.from_values(workers=2, orchestrator="127.0.0.1:1")
    # Management shares the port with several workers: replicas relay it to the primary.
    assert Settings.from_values(workers=2).effective_workers == 2
    assert Settings.from_values(workers=2, management_port=0).effective_workers == 2
    # Automatic workers (0) are resolved by `edge-server` (workers/layout.py); unresolved,
    # a Gateway is one process; pull mode with automatic workers is not a refusal.
    assert Settings().server.workers == 0
    assert Settings().effective_workers == 1
    assert Settings.from_values(orchestrator="127.0.0.1:1").effective_workers == 1


def test_a_config_file_may_group_settings_by_section(tmp_path: Path) -> None:
    config = tmp_path / "edge.json"
    config.write_text(
        json.dumps({"admission": {"max_queue_size": 9}, "server": {"grpc_port": 1}, "workers": 1})
    )
    settings = load_settings({}, environ={}, config_file=config)
    assert (settings.admission.max_queue_size, settings.server.grpc_port) == (9, 1)
    config.write_text(json.dumps({"admission": {"grpc_port": 1}}))
    with pytest.raises(ValueError, match="section 'admission' has no setting"):
        load_settings({}, environ={}, config_file=config)


def test_json_round_trip_keeps_every_value(tmp_path: Path) -> None:
    settings = Settings.from_values(
        trusted_keys=(Path("k.pub"),),
        pinned_versions={"digits": "2"},
        execution_providers=("CPUExecutionProvider",),
        max_queue_delay_us=7,
        allow_unsigned=True,
    )
    config = tmp_path / "round.json"
    config.write_text(json.dumps(settings_to_json(settings)))
    assert load_settings({}, environ={}, config_file=config) == settings
