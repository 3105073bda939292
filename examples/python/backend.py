#!/usr/bin/env python3
"""A webtalk backend in Python, standard library only: create a user, whisper to it, shout to everyone.

Run:  WEBTALK_PRIVATE=127.0.0.1:12344 python3 backend.py
"""
import os
import socket


class WebtalkError(Exception):
    """webtalk answered [error] ..."""


class Webtalk:
    """One control connection. Each frame is 5 digits (the payload's length in bytes), then the payload."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.replies = self.sock.makefile("rb")

    def call(self, command):
        payload = command.encode("utf-8")
        self.sock.sendall(b"%05d" % len(payload) + payload)
        size = int(self._read(5))
        reply = self._read(size).decode("utf-8")
        if not reply.startswith("[ok] "):
            raise WebtalkError(reply)
        return reply[len("[ok] "):]

    def close(self):
        self.sock.sendall(b"00000")  # goodbye
        self.sock.close()

    def _read(self, size):
        data = self.replies.read(size)
        if len(data) < size:
            raise ConnectionError("webtalk closed the connection")
        return data


def control_address():
    """WEBTALK_PRIVATE as the server reads it (HOST:PORT or :PORT), else 127.0.0.1:12344."""
    host, _, port = os.environ.get("WEBTALK_PRIVATE", "127.0.0.1:12344").rpartition(":")
    host = host.strip("[]")
    return (host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"), int(port)


def main():
    wt = Webtalk(*control_address())
    token = wt.call("[newuser]")  # "ID!SALT": hand it to the user's page, which logs in with it
    user = token.split("!")[0]
    print(f"user {user}: the page logs in with token {token}")
    print(f"whisper to {user}:", wt.call(f"[whisper] {user}!Hello, user {user} (from Python)"))
    print("shout to channel 1:", wt.call("[shout] 1!Hello, everyone (from Python)"))
    wt.close()


if __name__ == "__main__":
    main()
