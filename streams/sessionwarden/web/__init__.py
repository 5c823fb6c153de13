"""Web surfaces: the browser revocation stream (with its script) and the security dashboard."""
