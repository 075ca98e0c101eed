"""The Anvyl worker: a small HTTP server inside every workspace, and the client the orchestrator uses.

The worker never holds model keys or the Docker socket; it only runs commands, reads and writes files
and drives git inside its own workspace directory.
"""

API_VERSION = "1"
