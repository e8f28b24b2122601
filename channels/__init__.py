"""Channel adapters: one module per channel on one small base (`base`), the typed errors they
raise (`errors`), the `kind → class` table (`registry`) and the local sandboxes (`sandbox/`).

Each adapter is built from its own settings dataclass. This package imports nothing from
`publisher/` or `workers/`: `publisher.channel_config` fills in those settings.
"""
