"""The Shared Signals receiver: Security Event Tokens in, input events on auth.events out.

Pure decisions (no sockets, no Kafka, time as an argument): ``verify`` (a SET against its
transmitter's keys and rules), ``replay`` (the bounded jti store), ``mapping`` (a verified event
to input events), ``intake`` (the three in order, one outcome per SET), ``poll`` (RFC 8936
request and answer bodies). The shells: ``app`` (the RFC 8935 push endpoint, starlette),
``poller`` (the RFC 8936 loop), ``lanes`` (a thread per transmitter), ``taking`` (one SET
decided, published, settled), ``service`` (wiring, uvicorn, /metrics).
"""
