"""Member tools for end-to-end encrypted messages: the client library and ``hearthside dm``.

They run on the member's machine and hold the keys; the server they talk to never does.
"""
