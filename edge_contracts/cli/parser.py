"""How every command (edge-server, edge-client, model-tools, edge-orchestrator) reports a
usage mistake: one line on stderr, ``<prog>: error: <what is wrong> (see `<prog> --help`)``,
exit status 2, without argparse's usage block (the help is one flag away, and it says
more)."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (subcommand parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
