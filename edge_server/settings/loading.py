"""Settings from flags, environment variables and a JSON config file, and back to JSON.

Precedence: CLI flags > environment variables (``EDGE_`` prefix) > config file
(JSON, ``--config``) > defaults. Flag, environment and config names are the field names
(unique across sections), so ``--max-queue-size``, ``EDGE_MAX_QUEUE_SIZE`` and
``{"max_queue_size": 64}`` (or, in a config file, ``{"admission": {"max_queue_size": 64}}``)
all set ``settings.admission.max_queue_size``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from edge_contracts.cli.user_files import read_user_file
from edge_server.settings.fields import ENV_PREFIX
from edge_server.settings.gateway import SECTION_OF, Settings, setting_fields
from edge_server.settings.sections import SECTIONS

_PATHS = {
    name for _, f in setting_fields() for name in [f.name] if f.type in ("Path", "Path | None")
}


def _convert(name: str, raw: Any) -> Any:
    """Turn a string or JSON value into the type of field ``name``."""
    if name in _PATHS:
        return Path(raw) if raw not in (None, "") else None
    if name == "execution_providers":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(item.strip() for item in items if item.strip())
    if name in ("pinned_versions", "gateway_labels"):
        return parse_pins(raw) if isinstance(raw, str) else dict(raw)
    if name == "trusted_keys":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(Path(str(item).strip()) for item in items if str(item).strip())
    default = SECTIONS[SECTION_OF[name]].__dataclass_fields__[name].default
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError("use true or false")
        return text in ("1", "true", "yes", "on")
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, int):
        return int(raw)
    return str(raw)


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """Settings as a JSON object that ``load_settings(config_file=...)`` reads back."""
    data: dict[str, Any] = {}
    for name, value in settings.values().items():
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(item) for item in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        data[name] = value
    return data


def parse_pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, version = item.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"pinned version {item!r} is not NAME=VERSION")
        pins[name.strip()] = version.strip()
    return pins


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a ``--config`` JSON file holds, flat (a section object, such as
    ``{"admission": {...}}``, is unpacked); ValueError naming the file otherwise."""
    try:
        data = json.loads(read_user_file("--config", path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f'--config {path}: must hold a JSON object of settings, e.g. {{"grpc_port": 50051}}'
        )
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            strays = sorted(set(value) - {f.name for f in fields(SECTIONS[key])})
            if strays:
                raise ValueError(
                    f"--config {path}: section {key!r} has no setting(s) {', '.join(strays)}"
                )
            flat.update(value)
        else:
            flat[key] = value
    return flat


def load_settings(
    cli_values: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the layers; ``cli_values`` holds only flags the user actually gave."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(read_config_file(config_file))
    for name in SECTION_OF:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            merged[name] = env_value
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    unknown = sorted(set(merged) - set(SECTION_OF))
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    converted: dict[str, Any] = {}
    for name, raw in merged.items():
        try:
            converted[name] = _convert(name, raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"setting {name}: cannot use {raw!r} ({exc})") from None
    return Settings.from_values(**converted)
