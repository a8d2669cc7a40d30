from tradeforge.cli import main

main()
