"""Functions that take a session and never commit: items, publishing (checked publish, edit,
preview), freeze, scope (domains, departments), channel controls, queries, content.

The request, task or CLI command that owns the session commits. Imports models, the publication,
gate and ops helpers of `delivery`, and `channels/`; never the engine, the API, the CLI or
`workers/`.
"""
