"""The RTMP edge: asyncio connections, admission of a publish, publish-URL resolution,
the connection gate and protocol sniffing on the shared port."""
