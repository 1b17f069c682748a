"""Live peers (software nobody here wrote) that the test suite starts on loopback addresses.

`peers.fedify` drives a Fedify 2.3.6 server (tests/peers/fedify/peer.mjs); `make peers` installs
it. See research/interop-peers.md for what each peer shows and its quirks.
"""
