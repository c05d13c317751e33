"""Thread priorities: the event loop first, the work it admitted second.

On a 2-core board under overload, the event loop that accepts calls, refuses the
excess and sends answers competes for the cores with the decode and inference
threads doing the admitted work. If the kernel treats them equally, refusals wait
behind admitted work and the backlog (and its buffered request bytes) grows. Pool
threads therefore raise their nice value; on Linux the value is per thread and the
threads a thread starts inherit it, so ONNX Runtime's intra-op threads, created
when a session is built in such a thread, run at the same lower priority. Without
contention a nice value changes nothing: idle cores still run the work at once.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

MAX_NICE = 19


def lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by ``increment`` (never needs privileges)."""
    if increment <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICE, current + increment))
    except OSError as exc:  # e.g. a seccomp profile that forbids it: run at normal priority
        logger.debug("could not lower a worker thread's priority: %s", exc)


def worker_pool(workers: int, name: str, nice_increment: int) -> ThreadPoolExecutor:
    """A thread pool whose threads run ``nice_increment`` below the event loop."""
    return ThreadPoolExecutor(
        workers,
        thread_name_prefix=name,
        initializer=lower_thread_priority,
        initargs=(nice_increment,),
    )
