"""``python -m edge_client``: the ``edge-client`` command line."""

from edge_client.cli import main

raise SystemExit(main())
