"""The asyncio protocol engine: the client and server flows over a transport's channels.

A regular package (not a namespace package) so that documentation tools and packaging
find its modules like every other subpackage's.
"""
