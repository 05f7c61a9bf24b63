from totesys_cli.cli import main

main()
