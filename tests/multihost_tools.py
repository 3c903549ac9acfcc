"""Programs the multi-host test runs inside its network namespaces (`python -m tests.multihost_tools …`).

    sink ADDRESS PORT LOG          an SMTP sink; one JSON line per accepted message in LOG
    wait URL SECONDS               until URL answers below 500
    join BASE COUNT PREFIX         COUNT browser-like signups through BASE (GET the form, POST it)
    post BASE PATH…                POST each path (confirm links), print the statuses
    api BASE TOKEN METHOD PATH [JSON]   one API call, print {"status", "body"}
    get URL                        GET (no credentials), print {"status", "lines", "first"}
    upload BASE TOKEN FILE FIELDS_JSON  POST /api/v1/imports/supporters (multipart), print {"status", "body"}

Every command prints one JSON document on stdout; the test reads it.
"""

from __future__ import annotations

import json
import re
import sys
import time

CONFIRM = re.compile(r"/confirm/[A-Za-z0-9._\-]+")


def sink(address: str, port: int, log_path: str) -> None:
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    out = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process's life

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            message = message_from_bytes(envelope.content)
            confirm = None
            if "/confirm/" not in envelope.content.decode("latin-1"):  # transfer-encoded: decode to look
                for part in message.walk():
                    if part.get_content_type() == "text/plain":
                        found = CONFIRM.search(part.get_payload(decode=True).decode("utf-8", "replace"))
                        confirm = found.group(0) if found else confirm
            else:
                found = CONFIRM.search(envelope.content.decode("latin-1"))
                confirm = found.group(0) if found else None
            out.write(json.dumps({"at": time.time(), "peer": session.peer[0], "rcpt": envelope.rcpt_tos,
                                  "message_id": message.get("Message-ID"), "confirm": confirm}) + "\n")
            return "250 OK"

    controller = Controller(Handler(), hostname=address, port=port)
    controller.start()
    print(json.dumps({"ready": True}), flush=True)
    while True:
        time.sleep(3600)


def wait(url: str, seconds: float) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            status = requests.get(url, timeout=5).status_code
            if status < 500:
                print(json.dumps({"status": status}))
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            print(json.dumps({"status": None}))
            sys.exit(1)
        time.sleep(0.3)


def join(base: str, count: int, prefix: str) -> None:
    import requests

    results = []
    for i in range(count):
        session = requests.Session()
        deadline = time.monotonic() + 60
        while True:  # a web host still starting answers 503 through haproxy: the request never reached us
            page = session.get(f"{base}/join", timeout=30)
            found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        data = {"email": f"{prefix}{i}@example.org", "name": f"Fan Nummer {i} ü", "kind": "fan",
                "language": "de", "consent": "y", "csrf_token": found.group(1)}
        response = session.post(f"{base}/join", timeout=30, data=data)
        while response.status_code == 503 and time.monotonic() < deadline:  # haproxy: no backend took it
            time.sleep(0.5)
            response = session.post(f"{base}/join", timeout=30, data=data)
        results.append({"status": response.status_code, "request_id": response.headers.get("X-Request-ID")})
    print(json.dumps(results))


def post(base: str, paths: list[str]) -> None:
    import requests

    print(json.dumps([requests.post(f"{base}{path}", timeout=30).status_code for path in paths]))


def api(base: str, token: str, method: str, path: str, body: str | None = None) -> None:
    import requests

    response = requests.request(method, f"{base}/api/v1{path}", timeout=60,
                                headers={"Authorization": f"Bearer {token}"},
                                json=json.loads(body) if body else None)
    try:
        payload = response.json()
    except ValueError:
        payload = response.text
    print(json.dumps({"status": response.status_code, "body": payload}))


def get(url: str) -> None:
    import requests

    response = requests.get(url, timeout=120)
    lines = response.text.splitlines()
    print(json.dumps({"status": response.status_code, "lines": len(lines), "first": lines[0] if lines else None}))


def upload(base: str, token: str, path: str, fields: str) -> None:
    import requests

    with open(path, "rb") as fh:
        response = requests.post(f"{base}/api/v1/imports/supporters", timeout=120, data=json.loads(fields),
                                 headers={"Authorization": f"Bearer {token}"}, files={"file": ("list.csv", fh)})
    print(json.dumps({"status": response.status_code, "body": response.json()}))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "sink":
        sink(args[0], int(args[1]), args[2])
    elif command == "wait":
        wait(args[0], float(args[1]))
    elif command == "join":
        join(args[0], int(args[1]), args[2])
    elif command == "post":
        post(args[0], args[1:])
    elif command == "api":
        api(*args)
    elif command == "get":
        get(args[0])
    elif command == "upload":
        upload(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
