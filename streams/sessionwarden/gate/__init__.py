"""The gateway check: a forward-auth service for nginx, Traefik and Envoy (``sessionwarden
gate``). :mod:`~sessionwarden.gate.decision` is the pure decision, :mod:`~sessionwarden.gate.jwt`
the JWT verification, :mod:`~sessionwarden.gate.server` the HTTP shell."""
