from anvyl.gpt_oss.cli import main

main()
