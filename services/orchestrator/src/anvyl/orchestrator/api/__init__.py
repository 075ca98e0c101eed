"""The orchestrator's HTTP API."""
