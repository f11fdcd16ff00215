"""What operators see: log redaction and formatting (metrics, webhooks and health next)."""
