from anvyl.mcp_hub.cli import main

main()
