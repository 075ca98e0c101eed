from anvyl.worker.cli import main

main()
