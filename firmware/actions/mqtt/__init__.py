"""The appliance's MQTT client: the link (one client, availability, status), its durable
outbox and delivery, payloads, Home Assistant discovery and the settings. The ``mqtt_action``
node that publishes through it is in ``actions/nodes``."""
