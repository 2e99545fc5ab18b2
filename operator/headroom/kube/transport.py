"""HTTP to the API server: one aiohttp session with the kubeconfig's (or the pod's) TLS
settings and credentials, and nothing else on the way.

kubernetes_asyncio's ApiClient reads the configuration (kubeconfig, in-cluster files, the
token refresh) and stays the source of it; its request path is skipped on purpose. For every
request it walks the body to "sanitize" it, and its session trusts the environment, which
costs two thread-pool hops per request (a ~/.netrc lookup and a proxy lookup): in the
failover benchmark's profile about half the client's CPU. Here a request is one JSON encoding
and one aiohttp call; the environment's proxy settings are honoured only when one is set.
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Any
from urllib.parse import urlencode

import aiohttp
from kubernetes_asyncio import client as k8s_client

PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)
# A single request (not a watch, not a followed log) that takes longer has no answer coming.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)
STREAM_TIMEOUT = aiohttp.ClientTimeout()
READ_BUFFER = 2**21  # one watch event holds a whole object; etcd allows 1.5 MiB
# Who is asking, in the API server's audit log and request metrics (kopf names itself too).
USER_AGENT = "headroom-operator"


def ssl_context(configuration: k8s_client.Configuration) -> ssl.SSLContext:
    """The TLS settings a kubeconfig (or the in-cluster files) give."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Transport:
    """What Kube sends its requests through (the shape of the one ApiClient call it used)."""

    def __init__(self, configuration: k8s_client.Configuration, pool: int = 32) -> None:
        self._configuration = configuration
        connector = aiohttp.TCPConnector(limit=pool, ssl=ssl_context(configuration))
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=any(os.environ.get(name) for name in PROXY_VARIABLES),
            read_bufsize=READ_BUFFER,
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        await self._session.close()

    async def call_api(
        self,
        path: str,
        method: str,
        *,
        query_params: list[tuple[str, str]] | None = None,
        header_params: dict[str, str] | None = None,
        body: Any = None,
        stream: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send one request; the caller reads and releases the response. `stream`: a watch or
        a followed log, which may last as long as the server keeps it open."""
        config = self._configuration
        headers = dict(header_params or {})
        # Re-read on every request: the hook refreshes a rotated service-account token.
        token = await config.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        url = str(config.host) + path
        if query_params:
            url += "?" + urlencode(query_params)
        extra: dict[str, Any] = {}
        if config.proxy:
            extra["proxy"] = config.proxy
        if config.tls_server_name:
            extra["server_hostname"] = config.tls_server_name
        return await self._session.request(
            method,
            url,
            headers=headers,
            data=json.dumps(body) if body is not None else None,
            timeout=STREAM_TIMEOUT if stream else REQUEST_TIMEOUT,
            **extra,
        )
