from cdc.relay.relay import main

main()
