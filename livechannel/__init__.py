"""livechannel: RTMP live ingest and HLS packaging, wire-compatible with the OSS LiveChannel API."""

__version__ = "0.1.0"
