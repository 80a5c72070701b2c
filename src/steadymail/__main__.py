from steadymail.cli.entry import main

main()
