"""A TCP server on loopback that accepts every connection and never answers: a tracking server or object store
that hangs."""

from __future__ import annotations

import socket
import threading


class SilentServer:
    """Listens on 127.0.0.1 (`.url`), accepts and holds connections without a byte; `.stop()` closes everything."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the listener was closed by stop()
                return
            self.accepted.append(connection)

    def stop(self) -> None:
        """Close the listener and every connection it accepted."""
        self._listener.close()
        self._thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
