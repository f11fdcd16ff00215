"""Signatures: OSS request signing (V1), RTMP publish-URL signing, and the service URLs
minted with them."""
