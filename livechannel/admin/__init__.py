"""The operator's commands beside `serve`: channels and signed URLs, over the HTTP API."""
