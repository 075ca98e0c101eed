"""anvyl.orchestrator"""
