"""The pure core: no I/O, no clock, no randomness, no environment.

Everything here takes plain values (status codes, header mappings, bytes, strings, numbers) and returns
plain values, so it is tested with literals and hypothesis. The session layer and the fake server feed
it; neither is imported here.
"""
