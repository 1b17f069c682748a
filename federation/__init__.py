"""ActivityPub without I/O: documents, signatures bases, inbox decisions, delivery policy.

This package holds pure functions over typed values; ``server/`` supplies the network, the
clock and the database. The content rules shared by the client API and federation (Markdown
rendering, HTML sanitizing with Mastodon's allowlist) live here too.
"""
