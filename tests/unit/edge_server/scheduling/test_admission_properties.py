"""AdmissionControl's memory budget under concurrency: many asyncio tasks reserving,
holding across awaits and releasing (tests/unit/edge_server/scheduling/test_admission.py
has the single-call cases)."""

from __future__ import annotations

import asyncio
import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_server.catalogue.on_disk import DiskCatalogue
from edge_server.catalogue.serving import ServingCatalogue
from edge_server.errors import InvalidInput, Overloaded
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.scheduling.admission import AdmissionControl
from tests.support.model_factory import build_model_root

BUDGET = 1000


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ServingCatalogue:
    root = build_model_root(tmp_path_factory.mktemp("models"))
    catalogue = ServingCatalogue(
        DiskCatalogue(root),
        functools.partial(LoadedSession, config=SessionConfig(intra_op_threads=1)),
    )
    catalogue.discover()
    asyncio.run(catalogue.load_all())
    return catalogue


class Run:
    def __init__(self, models: ServingCatalogue) -> None:
        self.refused: list[str] = []
        self.drained: list[int] = []
        self.admission = AdmissionControl(
            models,
            max_queue_size=1000,
            memory_budget_bytes=BUDGET,
            on_memory_refused=self.refused.append,
            on_drained=self.drained.append,
        )
        self.highest = 0
        self.admitted = 0

    async def call(self, name: str, nbytes: int, holds: int) -> None:
        try:
            with self.admission.slot(name, footprint=lambda _: nbytes):
                self.admitted += 1
                for _ in range(holds):
                    self.highest = max(self.highest, self.admission.bytes_in_use)
                    await asyncio.sleep(0)
        except (Overloaded, InvalidInput):
            pass


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["gray", "tensoronly"]),
            st.integers(1, BUDGET + 50),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_concurrent_reservations_never_exceed_the_budget(
    models: ServingCatalogue, calls: list[tuple[str, int, int]]
) -> None:
    run = Run(models)

    async def flood() -> None:
        await asyncio.gather(*(run.call(*call) for call in calls))

    asyncio.run(flood())
    assert run.highest <= BUDGET
    assert run.admitted + len(run.refused) == len(calls)
    assert run.admission.bytes_in_use == 0
    assert run.admission.queue_depth("gray") == run.admission.queue_depth("tensoronly") == 0
    assert bool(run.drained) == (run.admitted > 0)
    assert all(0 < peak <= BUDGET for peak in run.drained)
    too_large = sum(1 for _, nbytes, _ in calls if nbytes > BUDGET)
    assert len(run.refused) >= too_large


def test_a_cancelled_call_gives_its_bytes_back(models: ServingCatalogue) -> None:
    run = Run(models)

    async def scenario() -> None:
        holding = asyncio.Event()

        async def stuck() -> None:
            with run.admission.slot("gray", footprint=lambda _: 800):
                holding.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(stuck())
        await holding.wait()
        assert run.admission.bytes_in_use == 800
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert run.admission.bytes_in_use == 0 and run.drained == [800]


def test_a_reservation_released_twice_does_not_enlarge_the_budget(
    models: ServingCatalogue,
) -> None:
    run = Run(models)
    model = run.admission.take("gray", "", None)
    held = run.admission.reserve(model, 600)
    run.admission.release_bytes(held)
    run.admission.release_bytes(held)
    run.admission.reserve(model, BUDGET)
    with pytest.raises(Overloaded):
        run.admission.reserve(model, 600)
