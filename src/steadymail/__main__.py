from steadymail.cli.main import main

main()
