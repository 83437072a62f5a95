"""A loopback imitation of a OneDrive-for-Business share, enough to exercise bench's GeneBody downloader.

It serves what the real service serves along the download path: the share link redirecting to
``guestaccess.aspx`` (an ASP.NET password form for protected links) and on to the ``onedrive.aspx?id=`` folder
view with a ``FedAuth`` cookie; the ``_api/v2.1/graphql`` listing and ``RenderListDataAsStream`` follow-up pages
(``NextHref``, ``page_size`` rows each); ``.spItemUrl`` metadata with ``quickXorHash``; and ``download.aspx``
with HTTP Range. Faults are scripted per file: ``faults[path] = ["drop:N", "503", ...]`` consumes one action per
download request ("drop:N" sends N bytes then closes the connection, "503" answers busy, "norange" ignores
the Range header and sends the whole file with 200); ``corrupt`` files are served with one byte
flipped while the listing keeps the true hash. ``downloads[path]`` records each download's Range header.
"""
from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from bench.datasets.download.quickxor import QuickXorHash

USER = "tester_example_org"
LIBRARY = f"/personal/{USER}/Documents"
VIEW_XML = '<View Name="{fake-view}"><RowLimit Paged="TRUE">30</RowLimit></View>'


def make_tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``members`` ({name: content}); names are stored as given (even unsafe ones)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Share:
    token: str
    folder: str  # server-relative folder the link points at
    files: dict[str, bytes]  # path inside the share -> content
    password: str | None = None
    ids: dict[str, str] = field(default_factory=dict)

    def children(self, rel: str) -> list[tuple[str, bool]]:
        """(name, is_folder) of the immediate children of ``rel`` ('' = the shared folder), sorted."""
        prefix = rel + "/" if rel else ""
        out = {}
        for path in self.files:
            if path.startswith(prefix):
                head, _, rest = path[len(prefix):].partition("/")
                out[head] = out.get(head, False) or bool(rest)
        return sorted(out.items())


class FakeSharePoint:
    def __init__(self, page_size: int = 2):
        self.page_size = page_size
        self.shares: dict[str, Share] = {}
        self.items: dict[str, tuple[Share, str]] = {}
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.corrupt: set[str] = set()
        self.downloads: dict[str, list[str | None]] = defaultdict(list)  # path -> Range header per request
        self.calls: Counter = Counter()  # endpoint kind -> count
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # -- setup -------------------------------------------------------------------------------------------
    def add_share(self, token: str, files: dict[str, bytes], password: str | None = None) -> str:
        share = Share(token, f"{LIBRARY}/GeneBody/{token}", dict(files), password)
        self.shares[token] = share
        for i, path in enumerate(sorted(files)):
            item_id = f"{token}-{i:04d}"
            share.ids[path] = item_id
            self.items[item_id] = (share, path)
        return f"{self.base}/:f:/g/personal/{USER}/{token}"

    def __enter__(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # -- helpers used by the handler -----------------------------------------------------------------------
    def view_url(self, share: Share) -> str:
        return f"{self.base}/personal/{USER}/_layouts/15/onedrive.aspx?" + urlencode({"id": share.folder, "ga": "1"})

    def share_for_folder(self, folder: str, cookie: str | None) -> Share | None:
        """The share whose folder contains ``folder`` and whose FedAuth cookie the client holds."""
        for share in self.shares.values():
            if (folder == share.folder or folder.startswith(share.folder + "/")) and cookie == f"auth-{share.token}":
                return share
        return None

    def row(self, share: Share, rel: str, name: str, is_folder: bool) -> dict:
        path = f"{rel}/{name}" if rel else name
        row = {"FileLeafRef": name, "FSObjType": "1" if is_folder else "0", "FileRef": f"{share.folder}/{path}"}
        if not is_folder:
            row[".spItemUrl"] = (f"{self.base}/personal/{USER}/_api/v2.0/drives/b!fake/items/{share.ids[path]}"
                                 "?version=Published")
        return row

    def page(self, share: Share, folder: str, first: int) -> dict:
        rel = folder[len(share.folder):].lstrip("/")
        kids = share.children(rel)
        chunk = kids[first: first + self.page_size]
        data = {"Row": [self.row(share, rel, n, f) for n, f in chunk], "FirstRow": first + 1}
        if first + self.page_size < len(kids):
            data["NextHref"] = (f"?Paged=TRUE&p_FileLeafRef={quote(chunk[-1][0])}&p_ID={first + self.page_size}"
                                f"&PageFirstRow={first + self.page_size + 1}&RootFolder={quote(folder, safe='')}"
                                "&View=fake-view")
        return data

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _cookie(self) -> str | None:
                for part in (self.headers.get("Cookie") or "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == "FedAuth":
                        return value
                return None

            def _send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, obj, status=200):
                self._send(status, json.dumps(obj).encode(), "application/json")

            def _redirect_to_view(self, share: Share):
                self._send(302, headers=[("Location", fake.view_url(share)),
                                         ("Set-Cookie", f"FedAuth=auth-{share.token}; Path=/; HttpOnly")])

            def _form(self, share: Share, error: str = ""):
                html = (f'<html><body><form method="post" action="./guestaccess.aspx?share={share.token}&amp;e=x" '
                        f'id="inputForm"><input type="hidden" name="__VIEWSTATE" value="vs-{share.token}" />'
                        '<input type="hidden" name="__VIEWSTATEGENERATOR" value="BA1A2C3D" />'
                        f'<input type="hidden" name="__EVENTVALIDATION" value="ev-{share.token}" />'
                        '<input type="hidden" name="SideBySideToken" value="sbs" />'
                        '<label>Enter password</label><input name="txtPassword" type="password" id="txtPassword" />'
                        '<input type="submit" name="btnSubmitPassword" value="Verify" id="btnSubmitPassword" />'
                        f'<span class="error">{error}</span></form></body></html>')
                self._send(200, html.encode())

            def do_GET(self):
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                parts = url.path.split("/")
                if url.path.startswith(f"/:f:/g/personal/{USER}/"):
                    fake.calls["link"] += 1
                    token = parts[-1]
                    if token not in fake.shares:
                        return self._send(404, b"no such share")
                    return self._send(302, headers=[
                        ("Location", f"/personal/{USER}/_layouts/15/guestaccess.aspx?share={token}")])
                if url.path == f"/personal/{USER}/_layouts/15/guestaccess.aspx":
                    share = fake.shares.get(q.get("share", ""))
                    if share is None:
                        return self._send(404)
                    if share.password is None or self._cookie() == f"auth-{share.token}":
                        return self._redirect_to_view(share)
                    return self._form(share)
                if url.path == f"/personal/{USER}/_layouts/15/onedrive.aspx":
                    fake.calls["view"] += 1
                    if fake.share_for_folder(q.get("id", ""), self._cookie()) is None:
                        return self._send(403, b"access denied")
                    return self._send(200, b'<html><script>var g_listData = {"Row":[],"FirstRow":1};</script></html>')
                if url.path.startswith(f"/personal/{USER}/_api/v2.0/drives/b!fake/items/"):
                    fake.calls["item"] += 1
                    item = fake.items.get(parts[-1])
                    if item is None:
                        return self._send(404)
                    share, path = item
                    if fake.share_for_folder(share.folder, self._cookie()) is None:
                        return self._json({"error": {"code": "accessDenied"}}, 403)
                    data = share.files[path]
                    return self._json({
                        "name": path.rsplit("/", 1)[-1], "size": len(data),
                        "@content.downloadUrl": f"{fake.base}/personal/{USER}/_layouts/15/download.aspx?"
                                                f"UniqueId={parts[-1]}&tempauth=tok-{parts[-1]}",
                        "file": {"hashes": {"quickXorHash": QuickXorHash(data).b64digest()}}})
                if url.path == f"/personal/{USER}/_layouts/15/download.aspx":
                    return self._download(q)
                self._send(404, b"unknown path")

            def _download(self, q):
                item = fake.items.get(q.get("UniqueId", ""))
                if item is None or q.get("tempauth") != f"tok-{q.get('UniqueId')}":
                    return self._send(401, b"bad tempauth")
                share, path = item
                fake.downloads[path].append(self.headers.get("Range"))
                data = bytearray(share.files[path])
                if path in fake.corrupt:
                    data[len(data) // 2] ^= 0xFF
                action = fake.faults[path].pop(0) if fake.faults[path] else None
                if action == "503":
                    return self._send(503, b"busy")
                start = 0
                rng = self.headers.get("Range") if action != "norange" else None
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        return self._send(416, headers=[("Content-Range", f"bytes */{len(data)}")])
                body = bytes(data[start:])
                self.send_response(206 if rng else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if action and action.startswith("drop:"):
                    self.wfile.write(body[: int(action[5:])])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_POST(self):
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == f"/personal/{USER}/_layouts/15/guestaccess.aspx":
                    fake.calls["password"] += 1
                    share = fake.shares.get(q.get("share", ""))
                    form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
                    if share is None or form.get("__VIEWSTATE") != f"vs-{share.token}" or form.get(
                            "__EVENTVALIDATION") != f"ev-{share.token}" or form.get("btnSubmitPassword") != "Verify":
                        return self._send(400, b"bad form post")
                    if form.get("txtPassword") != share.password:
                        return self._form(share, "Link password is incorrect")
                    return self._redirect_to_view(share)
                if url.path == f"/personal/{USER}/_api/v2.1/graphql":
                    fake.calls["graphql"] += 1
                    var = json.loads(body)["variables"]
                    folder = var["renderListDataAsStreamParameters"]["folderServerRelativeUrl"]
                    qs = parse_qs(var["renderListDataAsStreamQueryString"])
                    if var["listServerRelativeUrl"] != LIBRARY or qs.get("RootFolder") != [folder]:
                        return self._json({"errors": [{"message": "bad list or RootFolder"}]}, 400)
                    share = fake.share_for_folder(folder, self._cookie())
                    if share is None:
                        return self._json({"error": "access denied"}, 403)
                    return self._json({"data": {"legacy": {"renderListDataAsStream": {
                        "ListData": fake.page(share, folder, 0), "ViewMetadata": {"ListViewXml": VIEW_XML}}}}})
                if url.path == f"/personal/{USER}/_api/web/GetListUsingPath(DecodedUrl=@a1)/RenderListDataAsStream":
                    fake.calls["page"] += 1
                    params = json.loads(body)["parameters"]
                    folder = unquote(q.get("RootFolder", ""))
                    if params.get("ViewXml") != VIEW_XML or q.get("@a1") != f"'{LIBRARY}'":
                        return self._json({"error": "bad paging request"}, 400)
                    share = fake.share_for_folder(folder, self._cookie())
                    if share is None:
                        return self._json({"error": "access denied"}, 403)
                    return self._json({"ListData": fake.page(share, folder, int(q["PageFirstRow"]) - 1)})
                self._send(404, b"unknown path")

        return Handler
