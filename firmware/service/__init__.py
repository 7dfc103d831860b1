"""The ``pafw run`` process: the appliance and its web server, systemd notification, the
status line and snapshot."""
