"""A small cookie-keeping HTTP client (stdlib ``urllib``) with retries and exponential backoff.

SharePoint share links work like a browser session: the first GET sets a ``FedAuth`` cookie that every later
listing and metadata request must carry, so one :class:`HttpSession` (one cookie jar) serves one share. The client
sends a browser User-Agent because SharePoint serves its list pages to browsers.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from http.cookiejar import CookieJar
from typing import Callable

BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")

#: errors after which the same request may succeed: dropped or refused connections, timeouts, short reads
TRANSIENT_ERRORS = (ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException, urllib.error.URLError)
#: HTTP statuses worth retrying (throttling and server-side trouble)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class Response:
    status: int
    url: str  # after redirects
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(self.headers.get_content_charset() or "utf-8", errors="replace")

    def json(self):
        try:
            return json.loads(self.body)
        except json.JSONDecodeError as e:
            from .errors import ShareError

            raise ShareError(self.url, f"expected JSON (HTTP {self.status}), got {self.body[:200]!r}") from e


class TransientStatus(Exception):
    """An HTTP status from RETRY_STATUSES, raised so the retry loop treats it like a dropped connection."""

    def __init__(self, status: int, url: str):
        self.status = status
        super().__init__(f"HTTP {status} from {url}")


def backoff_delays(retries: int, backoff: float, cap: float = 60.0):
    """Sleep lengths between attempts: backoff, 2*backoff, 4*backoff, ... capped at ``cap`` seconds."""
    return [min(cap, backoff * 2**i) for i in range(retries)]


class HttpSession:
    """Cookie jar + opener; :meth:`request` buffers small responses, :meth:`stream` hands back the raw response."""

    def __init__(self, *, cookies: CookieJar | None = None, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 1.0, sleep: Callable[[float], None] = time.sleep):
        self.jar = cookies if cookies is not None else CookieJar()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _build(self, method: str, url: str, data: bytes | None, headers: dict | None) -> urllib.request.Request:
        h = {"User-Agent": BROWSER_UA, "Accept-Language": "en-US,en;q=0.9"}
        h.update(headers or {})
        return urllib.request.Request(url, data=data, headers=h, method=method)

    def stream(self, method: str, url: str, *, data: bytes | None = None, headers: dict | None = None):
        """Open ``url`` once (no retry) and return the live response; HTTP errors come back as responses too."""
        try:
            return self._opener.open(self._build(method, url, data, headers), timeout=self.timeout)
        except urllib.error.HTTPError as e:  # a 4xx/5xx is still an answer; let the caller read it
            return e

    def request(self, method: str, url: str, *, data: bytes | None = None, headers: dict | None = None) -> Response:
        """Send a request, retrying dropped connections and RETRY_STATUSES with exponential backoff."""
        delays = backoff_delays(self.retries, self.backoff)
        for attempt in range(self.retries + 1):
            try:
                resp = self.stream(method, url, data=data, headers=headers)
                with resp:
                    status = resp.status if hasattr(resp, "status") else resp.code
                    body = resp.read()
                    length = resp.headers.get("Content-Length")
                    if length is not None and length.isdigit() and len(body) < int(length):
                        raise http.client.IncompleteRead(body, int(length) - len(body))
                    if status in RETRY_STATUSES:
                        raise TransientStatus(status, url)
                    return Response(status, resp.geturl(), resp.headers, body)
            except (TransientStatus, *TRANSIENT_ERRORS) as e:
                if attempt == self.retries:
                    from .errors import DownloadError

                    raise DownloadError(f"{url}: still failing after {attempt + 1} attempts: {e}") from e
                self.sleep(delays[attempt])
        raise AssertionError("unreachable")
