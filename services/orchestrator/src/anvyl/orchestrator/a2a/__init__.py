"""A2A (Agent2Agent protocol) with the official a2a-sdk: this orchestrator as an A2A agent (its
Agent Card and JSON-RPC endpoint, mapped onto Anvyl tasks) and a client that asks other agents."""
