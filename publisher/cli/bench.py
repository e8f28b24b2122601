"""`publisher bench`: the benchmark of `bench/` (not a test; see `bench/run.py`).

Options are parsed by `bench.run.main` itself (`publisher bench --help`), so they are
defined once.
"""

from __future__ import annotations

import sys

import click


@click.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Benchmark: pipeline vs a bare Celery baseline, API latency, memory, the failed query."""
    # The harness builds a Celery app of its own and loads its driver and psycopg (about
    # 24 MB): only this command needs them.
    from bench.run import main

    sys.exit(main(list(args)))
