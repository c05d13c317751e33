"""Merged updates of a group commit's session: one object per kind, applied once, kinds in
name order; outside a group commit's session nothing is deferred."""

from __future__ import annotations

import functools

from sqlalchemy.orm import Session

from cloud_orchestrator.storage.merged import apply_merged, merged, open_group


class Recorder:
    def __init__(self, name: str, applied: list[str]) -> None:
        self.name = name
        self.applied = applied
        self.keys: set[str] = set()

    def apply(self, _session: Session) -> None:
        self.applied.append(f"{self.name}:{','.join(sorted(self.keys))}")


def test_outside_a_group_nothing_is_deferred() -> None:
    session = Session()
    assert merged(session, "usage", lambda: Recorder("usage", [])) is None
    apply_merged(session)  # nothing to do


def test_one_object_per_kind_applied_once_in_kind_order() -> None:
    applied: list[str] = []
    session = Session()
    open_group(session)
    for kind, key in [("usage", "gw-2"), ("drift", "gw-9"), ("usage", "gw-1"), ("usage", "gw-2")]:
        found = merged(session, kind, functools.partial(Recorder, kind, applied))
        assert found is not None
        found.keys.add(key)
    apply_merged(session)
    assert applied == ["drift:gw-9", "usage:gw-1,gw-2"]
    apply_merged(session)  # applied once: the group's updates are gone
    assert len(applied) == 2
    assert merged(session, "usage", lambda: Recorder("usage", applied)) is None
