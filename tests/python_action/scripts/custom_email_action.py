# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
# /user_scripts/custom_email_action.py
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
