"""anvyl.mcp_hub"""
