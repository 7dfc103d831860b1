"""Everything MQTT: the link (one client, availability, status), its durable outbox and
delivery, payloads, Home Assistant discovery, the settings and the ``mqtt_action`` node."""
