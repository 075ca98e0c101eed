from anvyl.agent.cli import main

main()
