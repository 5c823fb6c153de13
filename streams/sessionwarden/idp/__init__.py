"""Revocations out to identity providers: end in the provider the sessions Sessionwarden
revoked, so its refresh tokens die and its own back-channel logout reaches its clients."""
