"""Read a OneDrive-for-Business / SharePoint *share-folder link* the way its web page does, over plain HTTP.

The flow (as the official GeneBody ``download_tool.py`` drives it, reimplemented here):

1. GET the share link. SharePoint redirects to the folder view ``<site>/_layouts/15/onedrive.aspx?id=<folder>``
   and sets a ``FedAuth`` session cookie. A password-protected link instead answers with an ASP.NET form
   (``guestaccess.aspx``: hidden ``__VIEWSTATE``-style fields, a ``txtPassword`` box and a ``btnSubmitPassword``
   button); posting that form with the password sets the cookie and redirects to the folder view. The official
   tool types the password into headless Chromium; this client posts the same form fields directly. Cookies
   exported from a browser that has opened the link work too (see ``cookies.py``).
2. POST ``<site>/_api/v2.1/graphql`` with the ``legacy.renderListDataAsStream`` query for the folder; the answer's
   ``ListData.Row`` lists the first page of entries and ``ListData.NextHref`` points at the next page, fetched with
   ``<site>/_api/web/GetListUsingPath(DecodedUrl=@a1)/RenderListDataAsStream<NextHref>`` and the view's XML.
3. Rows with ``FSObjType == "1"`` are folders (listed the same way, recursively); files carry ``.spItemUrl``,
   whose JSON gives ``@content.downloadUrl`` (a pre-authorised, short-lived URL that honours HTTP Range), ``size``
   and ``file.hashes.quickXorHash``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

from .errors import AccessRequired, ShareError
from .session import HttpSession

#: RenderListDataAsStream option bits the SharePoint web UI itself requests (list data + view metadata ...)
GRAPHQL_RENDER_OPTIONS = 5707527
PAGED_RENDER_OPTIONS = 1216519
LIBRARY_NAMES = ("Documents", "Shared Documents")  # OneDrive personal library / team-site library
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

_GRAPHQL_QUERY = (
    "query ($listServerRelativeUrl: String!, $renderListDataAsStreamParameters: RenderListDataAsStreamParameters!, "
    "$renderListDataAsStreamQueryString: String!) { legacy { renderListDataAsStream("
    "listServerRelativeUrl: $listServerRelativeUrl, parameters: $renderListDataAsStreamParameters, "
    "queryString: $renderListDataAsStreamQueryString) } }"
)


@dataclass(frozen=True)
class RemoteEntry:
    """A file row of the listing: its path inside the share ('/'-separated) and its metadata URL."""
    path: str
    item_url: str


@dataclass(frozen=True)
class RemoteFile:
    """A file's metadata: fresh download URL (valid about an hour), size in bytes, base64 QuickXorHash."""
    path: str
    size: int
    quick_xor_hash: str | None
    download_url: str


def sp_quote(text: str) -> str:
    """Percent-encode everything, ``_`` and ``-`` included, as SharePoint's own query strings do."""
    return quote(text, safe="").replace("_", "%5F").replace("-", "%2D")


class _Forms(HTMLParser):
    """Collects each <form>'s attributes and its <input>/<button> elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {k.lower(): (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._current = {"attrs": attrs, "inputs": []}
            self.forms.append(self._current)
        elif tag in ("input", "button") and self._current is not None:
            if tag == "button":
                attrs.setdefault("type", "submit")
            self._current["inputs"].append(attrs)

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def find_password_form(html: str) -> dict | None:
    """The page's password form (a form holding ``txtPassword`` or any password box), or None."""
    parser = _Forms()
    parser.feed(html)
    for form in parser.forms:
        for inp in form["inputs"]:
            if inp.get("name") == "txtPassword" or inp.get("type", "").lower() == "password":
                return form
    return None


def password_form_fields(form: dict, password: str) -> list[tuple[str, str]]:
    """What a browser posts for the form: its fields as they are, the password typed in, the submit button."""
    fields, submit = [], None
    for inp in form["inputs"]:
        name = inp.get("name")
        if not name:
            continue
        kind = inp.get("type", "text").lower()
        if kind in ("submit", "image", "button", "reset"):
            if kind == "submit" and (submit is None or name == "btnSubmitPassword"):
                submit = (name, inp.get("value", ""))
            continue
        if kind in ("checkbox", "radio") and "checked" not in inp:
            continue
        fields.append((name, password if (kind == "password" or name == "txtPassword") else inp.get("value", "")))
    if submit is not None:
        fields.append(submit)
    return fields


def _safe_name(name, url: str) -> str:
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise ShareError(url, f"listing has an unusable file name {name!r}")
    return name


class SharedFolder:
    """One share-folder link: :meth:`open` it, :meth:`walk` its files, :meth:`resolve` each to a download URL."""

    def __init__(self, share_url: str, http: HttpSession, *, password: str | None = None, max_pages: int = 10000):
        self.share_url = share_url
        self.http = http
        self.password = password
        self.max_pages = max_pages
        self.view_url: str | None = None
        self.site: str | None = None  # e.g. https://host/personal/user
        self.list_url: str | None = None  # server-relative library, e.g. /personal/user/Documents
        self.root_folder: str | None = None  # server-relative shared folder

    # -- step 1: the link, the password form, the folder view ------------------------------------------------
    def open(self) -> None:
        if self.site is not None:
            return
        resp = self.http.request("GET", self.share_url)
        form = find_password_form(resp.text)
        if form is not None:
            if not self.password:
                raise AccessRequired(f"{self.share_url} asks for a password (none given, or the cookies given "
                                     "are not valid for it)")
            resp = self._submit_password(form, resp.url)
        if resp.status >= 400:
            raise ShareError(self.share_url, f"HTTP {resp.status} opening the share link")
        self._locate(resp.url)

    def _submit_password(self, form: dict, page_url: str):
        action = urljoin(page_url, form["attrs"].get("action") or page_url)
        body = urlencode(password_form_fields(form, self.password)).encode()
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(page_url))
        resp = self.http.request("POST", action, data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Referer": page_url, "Origin": origin})
        if find_password_form(resp.text) is not None:
            said = " (the share says: Link password is incorrect)" if "incorrect" in resp.text.lower() else ""
            raise AccessRequired(f"{self.share_url} rejected the password{said}")
        return resp

    def _locate(self, view_url: str) -> None:
        parts = urlsplit(view_url)
        folder = parse_qs(parts.query).get("id", [None])[0]
        if not folder:
            raise ShareError(view_url, "the share link did not lead to a folder view (no id= in the address); "
                                       "is it a folder link, and is it still shared?")
        path = parts.path
        site_path = path.split("/_layouts/")[0] if "/_layouts/" in path else "/".join(path.split("/")[:-3])
        segments = folder.rstrip("/").split("/")
        for i, seg in enumerate(segments):
            if seg in LIBRARY_NAMES:
                self.list_url = "/".join(segments[: i + 1])
                break
        else:
            raise ShareError(view_url, f"folder {folder!r} is not inside a {' or '.join(LIBRARY_NAMES)} library")
        self.view_url = view_url
        self.site = f"{parts.scheme}://{parts.netloc}{site_path}"
        self.root_folder = folder.rstrip("/")

    # -- step 2: listing with paging ----------------------------------------------------------------------
    def _post_json(self, url: str, payload: dict) -> dict:
        # headers as the web page sends them (a browser Accept; an odata=verbose body)
        resp = self.http.request("POST", url, data=json.dumps(payload).encode(), headers={
            "Content-Type": "application/json;odata=verbose", "Accept": BROWSER_ACCEPT, "Referer": self.view_url})
        if resp.status in (401, 403):
            raise AccessRequired(f"{self.share_url}: the share refused the listing (HTTP {resp.status}); the session "
                                 "cookies are missing or expired")
        if resp.status >= 400:
            raise ShareError(url, f"HTTP {resp.status} listing the folder")
        data = resp.json()
        if isinstance(data, dict) and "d" in data and isinstance(data["d"], dict):  # OData verbose envelope
            data = data["d"]
        if isinstance(data, dict) and data.get("errors"):
            raise ShareError(url, f"listing failed: {str(data['errors'])[:300]}")
        return data

    def list_folder(self, folder: str) -> list[dict]:
        """Every row of one folder (all pages)."""
        self.open()
        qs = f"@a1='{sp_quote(self.list_url)}'&RootFolder={sp_quote(folder)}&TryNewExperienceSingle=TRUE"
        first = self._post_json(f"{self.site}/_api/v2.1/graphql", {"query": _GRAPHQL_QUERY, "variables": {
            "listServerRelativeUrl": self.list_url,
            "renderListDataAsStreamParameters": {
                "renderOptions": GRAPHQL_RENDER_OPTIONS, "allowMultipleValueFilterForTaxonomyFields": True,
                "addRequiredFields": True, "folderServerRelativeUrl": folder},
            "renderListDataAsStreamQueryString": qs}})
        try:
            stream = first["data"]["legacy"]["renderListDataAsStream"]
            if isinstance(stream, str):
                stream = json.loads(stream)
            page = stream["ListData"]
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ShareError(f"{self.site}/_api/v2.1/graphql",
                             f"listing of {folder!r} lacks data.legacy.renderListDataAsStream.ListData") from e
        view_xml = (stream.get("ViewMetadata") or {}).get("ListViewXml")
        rows, seen = [], set()
        for _ in range(self.max_pages):
            rows.extend(self._rows(page, folder))
            href = page.get("NextHref")
            if not href:
                return rows
            if href in seen:
                raise ShareError(self.site, f"listing of {folder!r} repeats page {href!r}")
            seen.add(href)
            if view_xml is None:
                raise ShareError(self.site, f"listing of {folder!r} is paged but has no ViewMetadata.ListViewXml")
            href = href if href.startswith("?") else "?" + href
            if "RootFolder=" not in href:
                href += f"&RootFolder={sp_quote(folder)}"
            url = (f"{self.site}/_api/web/GetListUsingPath(DecodedUrl=@a1)/RenderListDataAsStream{href}"
                   f"&@a1=%27{sp_quote(self.list_url)}%27&TryNewExperienceSingle=TRUE")
            data = self._post_json(url, {"parameters": {
                "__metadata": {"type": "SP.RenderListDataParameters"}, "RenderOptions": PAGED_RENDER_OPTIONS,
                "ViewXml": view_xml, "AllowMultipleValueFilterForTaxonomyFields": True, "AddRequiredFields": True}})
            page = data.get("ListData") if isinstance(data, dict) else None
            if not isinstance(page, dict):
                raise ShareError(url, f"page of {folder!r} lacks ListData")
        raise ShareError(self.site, f"listing of {folder!r} has more than {self.max_pages} pages")

    def _rows(self, page: dict, folder: str) -> list[dict]:
        rows = page.get("Row")
        if not isinstance(rows, list):
            raise ShareError(self.site, f"listing of {folder!r} has no Row list")
        return rows

    def walk(self) -> list[RemoteEntry]:
        """All files below the shared folder, depth first, sorted by name within each folder."""
        self.open()
        out: list[RemoteEntry] = []
        self._walk(self.root_folder, "", out, depth=0)
        return out

    def _walk(self, folder: str, prefix: str, out: list[RemoteEntry], depth: int) -> None:
        if depth > 32:
            raise ShareError(self.site, f"folders nested more than 32 deep at {folder!r}")
        rows = self.list_folder(folder)
        for row in sorted(rows, key=lambda r: str(r.get("FileLeafRef", ""))):
            name = _safe_name(row.get("FileLeafRef"), self.site)
            rel = f"{prefix}{name}"
            if str(row.get("FSObjType")) == "1":
                ref = row.get("FileRef")
                sub = ref if isinstance(ref, str) and ref.rstrip("/") == f"{folder}/{name}" else f"{folder}/{name}"
                self._walk(sub, rel + "/", out, depth + 1)
            else:
                item_url = row.get(".spItemUrl")
                if not item_url:
                    raise ShareError(self.site, f"listing row for {rel!r} has no .spItemUrl")
                out.append(RemoteEntry(rel, item_url))

    # -- step 3: per-file metadata -----------------------------------------------------------------------
    def resolve(self, entry: RemoteEntry) -> RemoteFile:
        """A fresh download URL, size and hash for ``entry`` (download URLs expire, so call before each try)."""
        resp = self.http.request("GET", entry.item_url, headers={"Accept": "application/json"})
        if resp.status in (401, 403):
            raise AccessRequired(f"{self.share_url}: metadata of {entry.path} refused (HTTP {resp.status})")
        if resp.status >= 400:
            raise ShareError(entry.item_url, f"HTTP {resp.status} reading metadata of {entry.path}")
        meta = resp.json()
        url = meta.get("@content.downloadUrl") if isinstance(meta, dict) else None
        if not url:
            raise ShareError(entry.item_url, f"metadata of {entry.path} has no @content.downloadUrl")
        size = meta.get("size")
        if not isinstance(size, int) or size < 0:
            raise ShareError(entry.item_url, f"metadata of {entry.path} has no usable size ({size!r})")
        hashes = (meta.get("file") or {}).get("hashes") or {}
        return RemoteFile(entry.path, size, hashes.get("quickXorHash"), url)
