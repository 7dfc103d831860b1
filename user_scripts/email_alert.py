"""Email alert: the design study's EmailNotificationAction (section 2.2), unchanged.

When a concentration trigger fires (the node's ``concentration_threshold``), it sends one
email through an SMTP server with STARTTLS and login, at most one per trigger type every
300 s. Everything below the ``import smtplib`` line is the study's listing verbatim, so its
quirks are kept on purpose (copy the file and change your copy if they matter to you):

* only ``trigger_type == "concentration"`` sends mail; other triggers return False;
* the 300 s anti-spam window is hard-coded (``notification_interval_seconds`` is read but
  not used) and kept in memory: a worker restart or a hot reload forgets it;
* ``server.starttls()`` is called without an SSL context, so the server certificate is
  not verified (encrypted, but not authenticated): pass
  ``context=ssl.create_default_context()`` (and add ``ssl`` to allowed_imports) in a copy;
* ``get_status`` returns datetimes in ``last_notifications``: the appliance shows them as
  ISO 8601 UTC strings (naive datetimes, like ``datetime.now()``, taken as local time).

``CustomPythonAction`` and ``RustPhotoacousticAPI`` are not imported: the worker provides
them to every script (see docs/script-authors-guide.md).

Node configuration (the study's YAML; add it under ``processing.default_graph.nodes`` and
connect it from the concentration node). Two additions: ``capabilities.network: true``
(an action has no network unless granted) and the script path. The monitored node ids
are the study's; the shipped default graph calls them ``peak_finder`` and
``concentration``. The password comes from the environment (``EMAIL_PASSWORD``, e.g. in
the service's environment file), never from the file:

```yaml
- id: "python_email_alerts"
  type: "python_action"
  parameters:
    # Configuration PythonAction
    python_script_path: "/user_scripts/email_alert.py"
    python_class_name: "EmailNotificationAction"

    # Configuration de monitoring
    monitored_nodes: ["co2_peak_finder", "co2_concentration"]
    buffer_size: 100

    # Déclencheurs
    concentration_threshold: 1000.0   # ppm
    amplitude_threshold: 0.8          # input units (full scale)

    # Configuration Python spécifique
    python_config:
      smtp_server: "smtp.gmail.com"
      smtp_port: 587
      username: "alerts@company.com"
      password: "${EMAIL_PASSWORD}"     # Variable d'environnement
      recipients:
        - "operator@company.com"
        - "supervisor@company.com"

    # Sécurité
    python_timeout_ms: 5000           # Timeout d'exécution Python
    max_memory_mb: 64                 # Limite mémoire Python
    allowed_imports:                  # Modules Python autorisés
      - "smtplib"
      - "email"
      - "datetime"
      - "json"
      - "csv"
      - "requests"                    # HTTP client
    capabilities:
      network: true                   # SMTP: outbound connections
```
"""
import smtplib
from email.mime.text import MIMEText
from datetime import datetime
from typing import Dict, Any

class EmailNotificationAction(CustomPythonAction):
    """
    Action personnalisée : notifications email sur seuils
    """
    
    def __init__(self, api: RustPhotoacousticAPI):
        super().__init__(api)
        
        # Configuration récupérée automatiquement depuis Rust
        self.smtp_server = self.api.get_node_parameter("smtp_server", "localhost")
        self.smtp_port = self.api.get_node_parameter("smtp_port", 587)
        self.username = self.api.get_node_parameter("username")
        self.password = self.api.get_node_parameter("password")
        self.recipients = self.api.get_node_parameter("recipients", [])
        self.notification_interval = self.api.get_node_parameter("notification_interval_seconds", 300)
        
        # État interne
        self.last_notification = {}
        
        # Validation de la configuration
        if not self.username or not self.password:
            raise ValueError("SMTP username and password are required in node configuration")
        if not self.recipients:
            raise ValueError("Email recipients list is required in node configuration")
        
    def on_trigger(self, trigger_type: str, data: Dict[str, Any]) -> bool:
        """Envoi d'email sur déclenchement"""
        try:
            # Éviter le spam - max 1 email par 5 minutes
            now = datetime.now()
            last = self.last_notification.get(trigger_type)
            if last and (now - last).seconds < 300:
                return False
                
            # Construire le message
            if trigger_type == "concentration":
                concentration = data.get("value", 0)
                threshold = data.get("threshold", 0)
                source = data.get("source_node_id", "unknown")
                
                subject = f"⚠️ Alerte Concentration - {source}"
                body = f"""
                Seuil de concentration dépassé :
                
                • Concentration actuelle : {concentration:.2f} ppm
                • Seuil configuré : {threshold:.2f} ppm  
                • Nœud source : {source}
                • Horodatage : {now}
                
                Vérifiez votre système photoacoustique.
                """
                
                # Envoyer l'email
                self._send_email(subject, body)
                self.last_notification[trigger_type] = now
                
                # Logger dans le système Rust
                self.api.log_message("info", f"Email notification sent for {trigger_type}")
                return True
                
        except Exception as e:
            self.api.log_message("error", f"Email action failed: {str(e)}")
            return False
            
        return False
        
    def _send_email(self, subject: str, body: str):
        """Envoi d'email via SMTP"""
        msg = MIMEText(body)
        msg['Subject'] = subject
        msg['From'] = self.username
        msg['To'] = ', '.join(self.recipients)
        
        with smtplib.SMTP(self.smtp_server, self.smtp_port) as server:
            server.starttls()
            server.login(self.username, self.password)
            server.send_message(msg)
            
    def on_update(self, computing_data: Dict[str, Any]):
        """Mise à jour périodique - analyse de tendances"""
        # Optionnel : analyser les tendances pour alertes prédictives
        pass
        
    def get_status(self) -> Dict[str, Any]:
        """Statut de l'action email"""
        return {
            "status": "active",
            "smtp_server": self.smtp_server,
            "recipients_count": len(self.recipients),
            "last_notifications": self.last_notification
        }
