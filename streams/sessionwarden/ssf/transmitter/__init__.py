"""The Shared Signals transmitter (`sessionwarden ssf transmit`).

Pure decisions: ``streams`` (the stream management rules), ``delivery`` (retry schedule, what a
push answer means, poll requests), ``auth`` (bearer tokens and scopes), ``sets`` (the tokens of
one stream). The shell around them: ``store`` (SQLite: streams, subjects, queued events),
``ingest`` (revocations from Kafka into the queue), ``pusher`` (one delivery thread per push
stream), ``app`` (the HTTP API on Starlette) and ``service`` (wiring, uvicorn).
"""
