"""Hand-made report mails for the bounce tests: a DSN as Postfix writes it and an ARF report."""

from __future__ import annotations

import itertools

_seq = itertools.count(1)


def dsn(recipient: str, *, to: str, original_message_id: str = "<x@elsewhere.example>",
        action: str = "failed", status: str = "5.1.1", diagnostic: str = "smtp; 550 5.1.1 no such user",
        message_id: str | None = None, return_path: str | None = None) -> bytes:
    """A multipart/report delivery-status notification for one recipient, as Postfix sends it."""
    n = next(_seq)
    message_id = message_id or f"<dsn{n}@mx.remote.example>"
    original_return_path = f"Return-Path: <{return_path}>\r\n" if return_path else ""
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.remote.example>\r\n"
        f"To: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {message_id}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="B{n}"\r\n'
        f"\r\n"
        f"--B{n}\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        f"<{recipient}>: {diagnostic}\r\n\r\n"
        f"--B{n}\r\n"
        f"Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.remote.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n\r\n"
        f"--B{n}\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\n"
        f"{original_return_path}"
        f"From: Supporters <supporters@example.org>\r\n"
        f"To: {recipient}\r\n"
        f"Subject: News\r\n"
        f"Message-ID: {original_message_id}\r\n\r\n"
        f"--B{n}--\r\n"
    ).encode()


def arf(recipient: str | None, *, original_mail_from: str | None, original_message_id: str,
        feedback_type: str = "abuse", to: str = "fbl@example.org") -> bytes:
    """An RFC 5965 feedback report as a mailbox provider's feedback loop sends it."""
    n = next(_seq)
    rcpt = f"Original-Rcpt-To: {recipient}\r\n" if recipient else ""
    mail_from = f"Original-Mail-From: <{original_mail_from}>\r\n" if original_mail_from else ""
    return_path = f"Return-Path: <{original_mail_from}>\r\n" if original_mail_from else ""
    return (
        f"From: Feedback Loop <fbl@isp.example>\r\n"
        f"To: {to}\r\n"
        f"Subject: FW: News\r\n"
        f"Message-ID: <arf{n}@isp.example>\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="F{n}"\r\n'
        f"\r\n"
        f"--F{n}\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is an email abuse report for an email message received from IP 192.0.2.1.\r\n\r\n"
        f"--F{n}\r\n"
        f"Content-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\n"
        f"User-Agent: SomeISP-FBL/1.0\r\n"
        f"Version: 1\r\n"
        f"{mail_from}{rcpt}"
        f"Arrival-Date: Thu, 8 Mar 2026 14:00:00 +0000\r\n"
        f"Source-IP: 192.0.2.1\r\n\r\n"
        f"--F{n}\r\n"
        f"Content-Type: message/rfc822\r\n"
        f"Content-Disposition: inline\r\n\r\n"
        f"{return_path}"
        f"From: Supporters <supporters@example.org>\r\n"
        f"To: {recipient or 'redacted@isp.example'}\r\n"
        f"Subject: News\r\n"
        f"Message-ID: {original_message_id}\r\n\r\n"
        f"Hello!\r\n\r\n"
        f"--F{n}--\r\n"
    ).encode()
