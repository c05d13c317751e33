"""Cloud-side model optimization toolkit: export, quantize, evaluate, bench, bundle.

Importing this package never imports torch; only ``model_tools.export`` and
``model_tools.demo`` (and the modules they use) do, lazily, when called.
"""

from __future__ import annotations

__all__ = ["__version__"]

from edge_contracts import __version__
