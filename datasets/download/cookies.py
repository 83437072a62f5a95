"""Load browser cookies for a share (the route for password-protected links when the password form changes).

Accepted files (what browser cookie-export extensions and developer tools produce):

* Netscape ``cookies.txt``: tab-separated ``domain  include_subdomains  path  secure  expiry  name  value`` lines
  (``#HttpOnly_`` prefixes allowed). Session cookies (expiry 0) are kept: SharePoint's ``FedAuth`` is one.
* JSON: a list of ``{"name", "value", "domain", "path", "secure"}`` objects (Cookie-Editor / EditThisCookie).
* A ``Cookie:`` header copied from the browser's network tab: ``FedAuth=...; rtFa=...`` (applied to the share host).
"""
from __future__ import annotations

import json
from http.cookiejar import Cookie, CookieJar
from pathlib import Path
from urllib.parse import urlsplit


def make_cookie(name: str, value: str, domain: str, path: str = "/", secure: bool = False,
                expires: int | None = None) -> Cookie:
    dotted = domain.startswith(".")
    return Cookie(version=0, name=name, value=value, port=None, port_specified=False, domain=domain,
                  domain_specified=dotted, domain_initial_dot=dotted, path=path or "/", path_specified=True,
                  secure=secure, expires=expires or None, discard=not expires, comment=None, comment_url=None,
                  rest={}, rfc2109=False)


def _parse_netscape(text: str) -> list[Cookie]:
    out = []
    for line in text.splitlines():
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_"):]
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 7:
            raise ValueError(f"cookies.txt line has {len(fields)} tab-separated fields, expected 7: {line[:80]!r}")
        domain, _sub, path, secure, expiry, name, value = fields
        exp = int(float(expiry)) if expiry.strip() not in ("", "0") else None
        out.append(make_cookie(name, value, domain, path, secure.upper() == "TRUE", exp))
    return out


def _parse_json(data, host: str) -> list[Cookie]:
    items = data.get("cookies", data) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("JSON cookies must be a list of {name, value, domain, path} objects")
    out = []
    for c in items:
        if not isinstance(c, dict) or "name" not in c or "value" not in c:
            raise ValueError(f"JSON cookie entry needs 'name' and 'value': {str(c)[:80]}")
        exp = c.get("expirationDate") or c.get("expires")
        exp = int(exp) if isinstance(exp, (int, float)) and exp > 0 else None
        out.append(make_cookie(str(c["name"]), str(c["value"]), str(c.get("domain") or host),
                               str(c.get("path") or "/"), bool(c.get("secure", False)), exp))
    return out


def _parse_header(text: str, host: str) -> list[Cookie]:
    text = text.strip()
    if text.lower().startswith("cookie:"):
        text = text[len("cookie:"):]
    out = []
    for part in text.split(";"):
        if "=" not in part:
            continue
        name, value = part.split("=", 1)
        out.append(make_cookie(name.strip(), value.strip(), host))
    if not out:
        raise ValueError("no name=value pairs found")
    return out


def load_cookies(source, share_url: str) -> CookieJar:
    """A cookie jar from a file path (any format above), a ``{name: value}`` dict, or an existing jar.

    Cookies without a domain are bound to the host of ``share_url``.
    """
    if isinstance(source, CookieJar):
        return source
    host = urlsplit(share_url).hostname or ""
    jar = CookieJar()
    if isinstance(source, dict):
        cookies = [make_cookie(str(k), str(v), host) for k, v in source.items()]
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise ValueError(f"cannot read cookies file {path}: {e}") from e
        try:
            stripped = text.lstrip()
            if stripped.startswith(("[", "{")):
                cookies = _parse_json(json.loads(stripped), host)
            elif "\t" in text:
                cookies = _parse_netscape(text)
            else:
                cookies = _parse_header(text, host)
        except (ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a cookies.txt, JSON cookie export or Cookie header: {e}") from e
    for c in cookies:
        jar.set_cookie(c)
    return jar
