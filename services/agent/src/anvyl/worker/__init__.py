"""The Anvyl worker: a small HTTP server inside every workspace, and the client the orchestrator uses.

The worker never holds model keys or the Docker socket; it only runs commands, reads and writes files
and drives git inside its own workspace directory.
"""

API_VERSION = "1"
TOKEN_ENV = "ANVYL_WORKER_TOKEN"  # the workspace's bearer token; never passed on to commands
