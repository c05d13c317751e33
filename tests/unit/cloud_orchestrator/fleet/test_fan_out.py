"""FanOut: a change is sent once every stream open when it arrived dealt with it (sent it,
found nothing new, or closed); streams opened later and stale epochs do not count."""

from __future__ import annotations

from cloud_orchestrator.fleet.fan_out import FanOut


def test_the_change_is_sent_when_the_last_owing_stream_deals_with_it() -> None:
    seen: list[float] = []
    fan_out = FanOut(seen.append)
    a, b, c = fan_out.open(), fan_out.open(), fan_out.open()
    fan_out.begin(1)
    late = fan_out.open()  # subscribed after the change: sends what it reads first
    fan_out.sent(a, 1)
    fan_out.sent(b, 0)  # a send for the change before: still owes this one
    fan_out.sent(late, 1)
    assert seen == [] and fan_out.owing == 2
    fan_out.sent(b, 1)
    fan_out.close(c)  # gone before it sent: owes nothing any more
    assert len(seen) == 1 and 0.0 <= seen[0] < 5.0 and fan_out.owing == 0
    fan_out.sent(a, 1)  # again: counted once
    assert len(seen) == 1


def test_a_new_change_starts_over_with_the_streams_open_then() -> None:
    seen: list[float] = []
    fan_out = FanOut(seen.append)
    a, b = fan_out.open(), fan_out.open()
    fan_out.begin(1)
    fan_out.sent(a, 1)
    fan_out.begin(2)  # b never sent 1: the new change is what it owes now
    fan_out.sent(b, 1)
    assert seen == [] and fan_out.owing == 2
    fan_out.sent(a, 2)
    fan_out.sent(b, 2)
    assert len(seen) == 1
