"""The Celery app (`app`), thin tasks that take ids and call one function of `publisher`, and
the beat schedule. The top of the import order: `workers` → `publisher` → `channels`."""
