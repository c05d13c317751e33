"""The gateway's footprint: peak memory, cold start and install size.

    python -m benchmarks.footprint [--out FILE] [--skip-mobilenet]

benchmarks/footprint/__main__.py runs the measurements and prints the Markdown;
peak_memory.py, cold_start.py and install_size.py measure, server_processes.py starts
the processes they measure, tables.py renders the tables.
"""
