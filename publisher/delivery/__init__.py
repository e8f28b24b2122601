"""The delivery engine and what owns transactions around remote calls.

`engine` syncs one delivery (claim → plan → call → record); `gate`, `claims`, `ops` and
`publication` serve it and the services; `reconcile` and `wechat_digest` also call channels
between commits. Imports models, services' helpers and `channels/`; never `workers/` or the API.
"""
