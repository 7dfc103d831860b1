"""user_scripts/email_alert.py (the design study's EmailNotificationAction, verbatim) with the
study's YAML, sending a real email to a real SMTP server on loopback: aiosmtpd with
STARTTLS (throw-away self-signed certificate) and AUTH LOGIN/PLAIN allowed only over TLS."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import smtplib
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port
from tests.user_scripts.appliance_run import docstring_node, example_run
from tests.waiting import wait_until

USER = "alerts@company.com"  # the study's username and recipients
RECIPIENTS = ["operator@company.com", "supervisor@company.com"]
PASSWORD = "s3cret-from-the-environment"
STEP_FRAMES = 24  # 2 s of simulated signal


@dataclass
class Mailbox:
    """What the SMTP server saw: logins (mechanism, user, accepted, over TLS) and mails."""

    logins: list[tuple[str, str, bool, bool]] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER
              and auth_data.password.decode() == PASSWORD)
        user = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        with self.lock:
            self.logins.append((mechanism, user, ok, session.ssl is not None))
        return AuthResult(success=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.mails.append({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                               "content": envelope.content, "tls": session.ssl is not None,
                               "authenticated": session.authenticated})
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throw-away EC certificate for 127.0.0.1 (openssl CLI)."""
    cert, key = directory / "smtp.crt", directory / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def smtp_server(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(),
                            server_hostname="mail.pafw.test", tls_context=context,
                            require_starttls=True, authenticator=mailbox.authenticate,
                            auth_require_tls=True)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=5) as plain:  # the server's
            plain.ehlo()                                          # rule: no AUTH before TLS
            assert not plain.has_extn("auth")
            with pytest.raises(smtplib.SMTPNotSupportedError):
                plain.login(USER, PASSWORD)
        yield SmtpServer(controller.port, mailbox)
    finally:
        controller.stop()


def study_node(port: int) -> dict[str, Any]:
    """The study's YAML as given in the script's docstring, pointed at the local server."""
    node = docstring_node("email_alert.py")
    config = node["parameters"]["python_config"]
    assert config["password"] == "${EMAIL_PASSWORD}"
    assert config["username"] == USER and config["recipients"] == RECIPIENTS
    config.update(smtp_server="127.0.0.1", smtp_port=port)
    return node


def test_study_script_emails_when_concentration_crosses_1000_ppm(tmp_path, smtp_server,
                                                                  caplog):
    caplog.set_level(logging.INFO, logger="pafw.script")
    mailbox = smtp_server.mailbox
    with example_run(tmp_path, "email_alert.py", co2_ids=True,
                     nodes=[study_node(smtp_server.port)], env={"EMAIL_PASSWORD": PASSWORD},
                     profile={"profile": "steps", "levels_ppm": [500.0, 1500.0],
                              "step_s": 2.0, "repeat": False}) as run:
        action = run.handler("python_email_alerts")
        run.frames(STEP_FRAMES - 2)  # 500 ppm: nothing
        assert action.triggers == 0 and not mailbox.mails
        run.frames(STEP_FRAMES + 2)  # crosses 1000 ppm, stays at 1500
        wait_until(lambda: action.successes + action.failures >= 1, 60)
        wait_until(lambda: len(mailbox.mails) == 1, 30)
        status = run.status("python_email_alerts")

    assert action.triggers == 1 and action.successes == 1 and action.failures == 0, \
        status["last_error"]
    assert status["worker"]["last_error"] is None
    trigger = next(e for e in action.history.recent() if e.kind == "trigger").data
    assert trigger["trigger_type"] == "concentration"
    assert trigger["source_node_id"] == "co2_concentration"

    # the login: the study's username and the password from ${EMAIL_PASSWORD}, over TLS
    assert len(mailbox.logins) == 1
    mechanism, user, accepted, over_tls = mailbox.logins[0]
    assert mechanism in ("LOGIN", "PLAIN") and user == USER and accepted and over_tls

    mail = mailbox.mails[0]
    assert mail["tls"] and mail["authenticated"]
    assert mail["mail_from"] == USER and mail["rcpt_tos"] == RECIPIENTS
    msg = email.message_from_bytes(mail["content"], policy=email.policy.default)
    assert msg["Subject"] == "⚠️ Alerte Concentration - co2_concentration"
    assert msg["From"] == USER and msg["To"] == ", ".join(RECIPIENTS)
    body = msg.get_content()
    assert "Seuil de concentration dépassé :" in body
    assert "• Seuil configuré : 1000.00 ppm" in body
    assert "• Nœud source : co2_concentration" in body
    assert "Vérifiez votre système photoacoustique." in body
    value = float(re.search(r"Concentration actuelle : ([\d.]+) ppm", body).group(1))
    assert value == pytest.approx(trigger["value"], abs=0.01)
    assert 1000.0 <= value < 1800.0

    logged = [r.getMessage() for r in caplog.records if r.name.startswith("pafw.script")]
    assert any("Email notification sent for concentration" in m for m in logged), logged


def test_study_script_status_after_an_email(tmp_path, smtp_server):
    with example_run(tmp_path, "email_alert.py", co2_ids=True,
                     nodes=[study_node(smtp_server.port)], env={"EMAIL_PASSWORD": PASSWORD},
                     profile={"profile": "constant", "value_ppm": 1500.0}) as run:
        action = run.handler("python_email_alerts")
        run.frames(8)
        wait_until(lambda: action.successes == 1, 60)
        status = run.script_status("python_email_alerts")
    # the study returns datetime.now() values: they arrive as ISO 8601 UTC strings
    sent = datetime.fromisoformat(status["last_notifications"]["concentration"])
    assert sent.utcoffset() == timedelta(0)
    assert abs(sent.timestamp() - time.time()) < 60
    assert status["smtp_server"] == "127.0.0.1" and status["recipients_count"] == 2
