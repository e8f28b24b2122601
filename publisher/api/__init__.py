"""The REST API (`/api/v1`, DESIGN §6): FastAPI, bearer tokens, Prometheus metrics."""
