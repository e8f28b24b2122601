"""The benchmark (`publisher bench`): real processes on Redis and PostgreSQL, not a timed test.

`bench.run.main` runs it all and prints a table of figures against their targets: the
pipeline (N items × 4 channels, publish to live) next to a bare Celery baseline doing the
same HTTP calls (`bench.baseline`), the API's publish latency under 50 concurrent clients,
the worker's peak memory, and the operator's failed-deliveries query over 1,000,000 rows.
"""
