"""Sans-IO RTMP (Adobe RTMP spec 1.0), in layers, one concept per module:

handshake → chunk (ChunkReader/ChunkWriter) → transport (protocol control) → messages
(types, control bodies, commands) → amf0 → connection (`ServerConnection`, what the ingest
edge drives) and client (`ClientConnection`, a publisher for tests and load generation).
No sockets, no event loop, no clock: bytes in, events out, bytes out.
"""
