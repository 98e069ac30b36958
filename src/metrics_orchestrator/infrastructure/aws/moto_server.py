"""An in-process AWS emulator (moto's threaded server) for the embedded mode and tests."""

from __future__ import annotations

import logging

from moto.server import ThreadedMotoServer


class MotoServer:
    """moto on 127.0.0.1 and a free port, spoken to over real HTTP by real boto3 clients."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None

    def start(self) -> str:
        if self._endpoint_url is not None:
            return self._endpoint_url
        # werkzeug would otherwise print a line per emulated AWS request.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # Port 0 lets the OS pick a free port; moto reports the one actually bound.
        server = ThreadedMotoServer(ip_address=self._host, port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"
        return self._endpoint_url

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("the moto server is not running; call start() first")
        return self._endpoint_url

    def stop(self) -> None:
        server, self._server, self._endpoint_url = self._server, None, None
        if server is not None:
            server.stop()


def start_moto_server(host: str = "127.0.0.1") -> MotoServer:
    server = MotoServer(host)
    server.start()
    return server
