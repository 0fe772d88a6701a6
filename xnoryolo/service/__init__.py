"""Real-time detection service: stream capture, shared inference, publish hub, HTTP API."""
