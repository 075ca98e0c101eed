from anvyl.orchestrator.cli import main

main()
