# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
# The design study's WebhookNotificationAction (section 2.4.4). The study's fragment omits
# its imports and _send_webhook; they are added here (the stand-in records the payload
# instead of POSTing it), the rest is verbatim.
from datetime import datetime
from typing import Any, Dict


class WebhookNotificationAction(CustomPythonAction):
    """Action webhook avec configuration flexible"""
    
    def __init__(self, api: RustPhotoacousticAPI):
        super().__init__(api)
        
        # Configuration récupérée de manière type-safe
        self.webhook_url = self.api.get_node_parameter("webhook_url")
        self.api_key = self.api.get_node_parameter("api_key")
        self.timeout_seconds = self.api.get_node_parameter("timeout_seconds", 10)
        self.retry_count = self.api.get_node_parameter("retry_count", 3)
        
        # Configuration avancée avec structure complexe
        notification_config = self.api.get_node_parameter("notification_config", {})
        self.templates = notification_config.get("templates", {})
        self.escalation_rules = notification_config.get("escalation", [])
        
        # Validation
        if not self.webhook_url:
            raise ValueError("webhook_url is required in node configuration")
            
    def on_trigger(self, trigger_type: str, data: Dict[str, Any]) -> bool:
        """Envoi webhook avec template dynamique"""
        template = self.templates.get(trigger_type, self.templates.get("default", {}))
        
        payload = {
            "timestamp": datetime.now().isoformat(),
            "trigger_type": trigger_type,
            "sensor_data": data,
            "message": template.get("message", "Photoacoustic alert triggered"),
            "severity": template.get("severity", "warning"),
            "node_id": self.api.get_monitored_node_ids()
        }
        
        return self._send_webhook(payload)

    def _send_webhook(self, payload: Dict[str, Any]) -> bool:
        self.last_payload = payload
        return True

    def get_status(self) -> Dict[str, Any]:
        return {"status": "active", "last_payload": getattr(self, "last_payload", None)}
