"""The appliance's HTTP API, live stream and dashboard (served by `pafw run`)."""
