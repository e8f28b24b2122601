"""The REST API (`/api/v1`): FastAPI, bearer tokens, Prometheus metrics. Routes call services
and `delivery.ops`; the app installs its Celery sender (`publisher.dispatch`)."""
