"""Update trust: a root-signed keyring of signing keys and per-bundle signed targets.

Formats and checks are described in docs/security.md; the gateway's remembered state
(highest keyring version, highest sequence per model) lives in
edge_server/lifecycle/freshness.py.
"""
