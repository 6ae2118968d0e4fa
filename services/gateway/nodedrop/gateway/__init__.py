"""Gateway: the HTTP edge (console, HTTP/JSON API, webhooks, WebSocket bridge)."""
