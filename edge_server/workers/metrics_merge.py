"""One /metrics page for several gateway processes.

Each process counts its own requests. The primary serves the union, every series
labelled with the ``worker`` that produced it ("0" is the primary), as Prometheus
expects from a multi-process target: ``sum without (worker) (...)`` gives the
gateway's totals, and a counter never goes backwards because a worker restarted
under a different label value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

WORKER_LABEL = "worker"


class _Merged:
    """A collector that yields already merged families (for generate_latest)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_expositions(pages: Iterable[tuple[str, bytes]]) -> bytes:
    """Merge Prometheus text pages given as (worker label, page) into one page."""
    merged: dict[str, Metric] = {}
    for worker, page in pages:
        for family in text_string_to_metric_families(page.decode("utf-8")):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                labels = {WORKER_LABEL: worker, **sample.labels}
                target.samples.append(
                    Sample(sample.name, labels, sample.value, sample.timestamp, sample.exemplar)
                )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(merged.values())))
    return generate_latest(registry)
