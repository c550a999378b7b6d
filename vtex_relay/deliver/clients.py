"""One ``httpx.Client`` per thread, for ``OmsClient``: each keeps its connection between calls.

A single pool shared by every thread costs more the more connections it holds: httpcore looks
at each of them (a poll() of each idle socket, and a count of the idle ones for each idle one)
twice a request, and 64 threads keep dozens open. A thread makes one call at a time, so a
client of its own never waits for a connection. The clients share one TLS context: loading the
CA certificates takes ~25 ms each.
"""

import threading
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx


class ThreadClients:
    """Each thread's client, made on its first ``get``; ``close`` closes them all."""

    def __init__(self, timeout: float, transport: httpx.BaseTransport | None = None) -> None:
        self._timeout = timeout
        self._transport = transport
        self._tls = httpx.create_ssl_context()
        self._local = threading.local()
        self._clients: list[httpx.Client] | None = []  # None once closed
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        """This thread's client (``RuntimeError`` once closed)."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                headers={"Accept": "application/json", "Content-Type": "application/json"},
                timeout=self._timeout,
                # Room for a response the thread has not closed yet; one kept between calls.
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=1),
                verify=self._tls,
                follow_redirects=False,  # a redirect would resend the credentials elsewhere
                # No cookie is kept: a cookie VTEX (or a proxy) sets on one account's answer
                # must not be sent on another account's call made by this thread.
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                transport=self._transport,
            )
            with self._lock:
                if self._clients is None:
                    client.close()
                    raise RuntimeError("the OMS client is closed")
                self._clients.append(client)
            self._local.client = client
        return client

    def close(self) -> None:
        """Close every thread's client: a thread that had one finds it closed (httpx raises
        ``RuntimeError`` on its next request), and ``get`` makes no new one."""
        with self._lock:
            clients, self._clients = self._clients or [], None
        for client in clients:
            client.close()
