"""The errors the shared contracts raise: a bad manifest, a bad bundle, a port that cannot
be listened on.

Every tier catches them; the gateway extends ``EdgeError`` with its own errors in
edge_server/errors.py, and only the table in edge_contracts/status.py turns errors into
gRPC codes. Each message is written for the person who will read it: what was wrong and,
where it is not obvious, what to do instead.
"""

from __future__ import annotations

__all__ = ["BundleError", "EdgeError", "IntegrityError", "ManifestError", "StartupError"]


class EdgeError(Exception):
    """Base of every error the system raises on purpose."""


class ManifestError(EdgeError):
    """manifest.json is missing a field or holds a wrong value."""


class StartupError(EdgeError):
    """A server cannot start as configured (e.g. a port is taken): one line to the operator."""


class BundleError(EdgeError):
    """A model bundle is malformed, too large, unsafe to extract, or a key is unusable."""


class IntegrityError(BundleError):
    """A bundle's bytes do not match its manifest, or no trusted key signed it: reject it."""
