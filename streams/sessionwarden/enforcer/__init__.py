"""The enforcer: pure session logic (state, core) and its Kafka transaction shell (loop)."""
