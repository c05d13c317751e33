"""Contracts every tier of the edge inference system shares.

``edge_contracts.proto`` holds the Python code generated from ``protos/`` (wire packages
``edge.v1`` and ``inference``), under this project's own import name so that it cannot
collide with other packages called ``edge`` or ``inference``.
"""
