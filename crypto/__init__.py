"""Hearthside's cryptography layer: the only package that touches primitives directly.

Signing keys, password hashing, token digests and (in later modules) HTTP-signature crypto,
FEP-8b32 proofs, E2EE and franking. No I/O, no clock: callers pass what is needed.
"""
