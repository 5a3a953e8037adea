from splice.cli import main

main()
