"""The parameters of a V2 repository load or unload, whichever face they came through.

gRPC sends them as ``ModelRepositoryParameter`` messages, REST as a JSON object; both
faces turn them into plain values first and ask this module what they mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from edge_server.errors import InvalidInput


def load_version(values: Mapping[str, object]) -> str:
    """The version a repository load asks for ("" = the default choice).

    Either the gateway's own ``version`` string parameter, or Triton's ``config``
    parameter holding only ``{"version_policy": {"specific": {"versions": [V]}}}``
    (what ``tritonclient``'s ``load_model(name, config=...)`` sends).
    """
    unknown = sorted(set(values) - {"version", "config"})
    if unknown:
        raise InvalidInput(
            f"load parameter {unknown[0]!r} is not supported: the gateway loads model folders "
            "as they are on disk and understands only 'version' and a 'config' that picks one "
            "version",
            "parameters",
        )
    if "config" not in values:
        return str(values.get("version") or "")
    try:
        config = json.loads(str(values["config"]))
        specific = config["version_policy"]["specific"]["versions"]
        if set(config) != {"version_policy"} or len(specific) != 1:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(
            "load parameter 'config' must be JSON holding only "
            '{"version_policy": {"specific": {"versions": [<one version>]}}}',
            "parameters.config",
        ) from None
    return str(specific[0])


def check_unload(keys: Iterable[str]) -> None:
    unknown = sorted(set(keys) - {"unload_dependents"})
    if unknown:
        raise InvalidInput(f"unload parameter {unknown[0]!r} is not supported", "parameters")
