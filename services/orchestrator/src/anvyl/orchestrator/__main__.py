from anvyl.orchestrator.cli.main import main

main()
