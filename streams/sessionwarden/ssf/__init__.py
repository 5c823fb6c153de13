"""OpenID Shared Signals Framework 1.0: the vocabulary both directions share.

``vocabulary`` names the event types (CAEP 1.0, RISC 1.0, the SSF stream events), the delivery
methods and the media type; ``subjects`` builds and checks RFC 9493 subject identifiers (with
SSF's complex subject); ``errors`` holds the RFC 8935 error codes; ``tokens`` encodes, signs and
reads Security Event Tokens (RFC 8417). Pure: no I/O, no clock.
"""
