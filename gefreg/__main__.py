from gefreg.cli import main

main()
