"""Gateway: WebSocket bridge to EventService and the live view page."""
