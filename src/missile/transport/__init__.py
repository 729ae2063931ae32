"""Transports: HTTP (httpx client, ASGI server) and raw asyncio TCP streams."""
