"""publisher: write a government information item once, keep every channel in step with it.

The canonical store and the product around it: models, services, the delivery engine, the API
and the CLI. Imports `channels/`; never `workers/` (except `publisher/cli/run.py`, which starts
the worker and beat). See docs/architecture.md for the layout.
"""

__version__ = "0.1.0"
