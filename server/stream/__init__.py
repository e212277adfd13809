"""Live streams to clients: WebSocket (`/ws`) and Server-Sent Events (`/api/stream`)."""
