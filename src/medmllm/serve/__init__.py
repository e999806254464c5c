"""Serving: the FastAPI app (OpenAI-compatible routes, /v1/ask, /v1/deid) and the web UI."""
