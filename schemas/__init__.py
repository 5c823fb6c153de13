"""Sessionwarden event contracts: pydantic models for every record on the wire, and their codec."""
