"""A replica gateway process: ``python -m edge_server.workers.replica CONFIG INDEX FOLDER``.

Started by the primary's WorkerSupervisor, never by hand: CONFIG is the primary's
resolved settings, INDEX this worker's number, FOLDER the primary's private folder of
sockets (edge_server/workers/private_folder.py: what only the primary answers is
relayed there, and this worker's own /metrics is served there). It serves inference,
health and reflection on the shared gRPC and HTTP ports, follows the primary's models
through its stdin and stops on SIGTERM or when the primary goes away (stdin closes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from edge_server.settings import load_settings
from edge_server.workers.control import Followed, Hello
from edge_server.workers.follower import ModelFollower

logger = logging.getLogger("edge_server")


async def serve_replica(config: Path, index: int, folder: Path) -> int:
    from edge_server.app import Gateway, lower_background_priority  # after logging is set

    settings = load_settings({}, environ={}, config_file=config)
    lower_background_priority(settings)
    gateway = Gateway(settings, worker_index=index, private_folder=folder)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    follower = ModelFollower(gateway.models, _send)
    # Listen to the primary from the start: one that dies while this worker loads its
    # models must not find the port still held when it is started again.
    reading = asyncio.create_task(follower.read(reader))
    starting = asyncio.create_task(gateway.start())
    await asyncio.wait({reading, starting}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        logger.warning("the primary process went away; worker %d stops before serving", index)
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        return 0
    starting.result()  # a start-up error ends this worker (the primary restarts it)
    _send(Hello(os.getpid()))

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reading.add_done_callback(lambda _task: stop.set())  # the primary is gone
    following = asyncio.create_task(follower.follow(gateway.load_task))
    await stop.wait()
    if reading.done():
        logger.warning("the primary process went away; worker %d stops", index)
    for task in (reading, following):
        task.cancel()
    await asyncio.gather(reading, following, return_exceptions=True)
    await gateway.stop()
    return 0


def _send(message: Hello | Followed) -> None:
    """One line to the primary (the replica's stdout is the control pipe)."""
    sys.stdout.buffer.write(message.encode())
    sys.stdout.buffer.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m edge_server.workers.replica CONFIG INDEX FOLDER", file=sys.stderr)
        return 2
    index = int(args[1])
    level = load_settings({}, environ={}, config_file=Path(args[0])).server.log_level
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(serve_replica(Path(args[0]), index, Path(args[2])))


if __name__ == "__main__":
    sys.exit(main())
