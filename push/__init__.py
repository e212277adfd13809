"""Web Push: keys, payloads, sending, and the durable delivery queue."""
