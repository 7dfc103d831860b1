"""Webhook notification: the design study's WebhookNotificationAction (section 2.4.4).

On every trigger it POSTs a JSON document to ``webhook_url``::

    {"timestamp": "2025-06-23T10:15:02.123456", "trigger_type": "concentration",
     "sensor_data": {...the trigger's data: value, threshold, source_node_id, time...},
     "message": "CO2 above 2000 ppm", "severity": "critical", "node_id": ["concentration"]}

``message`` and ``severity`` come from ``notification_config.templates`` (by trigger type,
else ``default``). The class is the study's listing verbatim; the study leaves out its
imports and ``_send_webhook``, which are added here (standard library only: urllib):
an ``Authorization: Bearer <api_key>`` header when ``api_key`` is set, ``timeout_seconds``
per attempt, ``retry_count`` retries with a doubling pause on network errors, timeouts,
HTTP 5xx, 408 and 429 (other 4xx answers are final), all within the node's
``python_timeout_ms``. ``escalation`` rules are read but, as in the study, not used.

``CustomPythonAction`` and ``RustPhotoacousticAPI`` are not imported: the worker provides
them to every script (see docs/script-authors-guide.md).

Node configuration (under ``processing.default_graph.nodes``; connect it from the
concentration node). The API key comes from the environment (``WEBHOOK_API_KEY``):

```yaml
- id: webhook_alerts
  type: python_action
  parameters:
    python_script_path: /user_scripts/webhook_notification.py
    python_class_name: WebhookNotificationAction
    monitored_nodes: [concentration]
    triggers:
      - { type: threshold, name: high_co2, kind: concentration, above: 2000.0,
          hysteresis: 100.0 }
    python_config:
      webhook_url: "https://hooks.example.com/pafw/co2"
      api_key: "${WEBHOOK_API_KEY:-}"
      timeout_seconds: 3
      retry_count: 2
      notification_config:
        templates:
          concentration: { message: "CO2 above 2000 ppm", severity: critical }
          default: { message: "Photoacoustic alert triggered", severity: warning }
    python_timeout_ms: 10000      # covers every attempt and pause
    allowed_imports: [urllib]
    capabilities:
      network: true               # outbound HTTP
```
"""

import json
import time
import urllib.error
import urllib.request
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

    # -- not in the study: its listing ends with the call above ---------------------------
    def _send_webhook(self, payload: dict[str, Any]) -> bool:
        """POST ``payload`` as JSON; True once the server answered 2xx."""
        url = str(self.webhook_url)
        if not url.startswith(("http://", "https://")):
            self.api.log_message("error", f"webhook_url must be http(s)://..., got {url!r}")
            return False
        body = json.dumps(payload, default=str).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "pafw-python-action"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # the appliance kills a call that runs past python_timeout_ms: stop short of it
        budget_s = self.api.get_node_parameter("python_timeout_ms", 5000) / 1000 - 0.5
        deadline = time.monotonic() + budget_s
        pause_s, error = 0.5, "python_timeout_ms leaves no time for an attempt"
        for attempt in range(1, 2 + max(0, int(self.retry_count))):
            remaining = deadline - time.monotonic()
            if remaining < 0.1:
                break
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            timeout = min(float(self.timeout_seconds), remaining)
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                exc.close()
                error = f"HTTP {exc.code} {exc.reason}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break  # the request itself is wrong: retrying will not help
            except OSError as exc:  # refused, unreachable, DNS, timeout (URLError too)
                error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            else:
                self.api.log_message("info", f"webhook {payload.get('trigger_type')}: HTTP "
                                             f"{status} (attempt {attempt})")
                return True
            if time.monotonic() + pause_s >= deadline:
                break
            time.sleep(pause_s)
            pause_s *= 2
        self.api.log_message("error", f"webhook to {url} failed: {error}")
        return False
