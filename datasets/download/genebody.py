"""Download GeneBody from its OneDrive-for-Business shares: listing, resumable verified download, extraction.

Subsets (the official ``genebody/download_tool.py`` share links):

==================  ======================================================================================
``test10``          10 test subjects, one ``<subject>.tar.gz`` each -> ``<root>/<subject>/...``
``train40``         40 training subjects, same layout; **password-protected** (see :func:`access_message`)
``smpl_depth``      SMPL-X depth maps; archives hold ``GeneBody/<subject>/smpl_depth/...`` and are merged into
                    ``<root>/<subject>/smpl_depth/`` (the official tool rsyncs ``GeneBody/*`` into the root)
``pretrained_models`` checkpoints, one folder per method, kept as files (not extracted) under
                    ``<root>/pretrained_models/<method>/``. The official tool moves GNR's to ``./logs/genebody/``
                    and the others to ``./benchmarks/<method>/``; bench leaves them in the dataset root.
==================  ======================================================================================

Archives (``.tar.gz``/``.tgz``/``.gz``) of the data subsets are extracted safely where they were downloaded
and then deleted; ``<root>/.bench-download/<subset>.json`` records what is done, so re-running only fetches what
is missing or changed, and a file cut off mid-way resumes from its ``.part`` with an HTTP Range request.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping

from .archive import extract_archive, is_archive
from .cookies import load_cookies
from .errors import AccessRequired, DownloadError, DownloadIncomplete
from .fetch import fetch_file
from .manifest import Manifest
from .quickxor import quickxor_file
from .report import DownloadReport
from .session import HttpSession
from .sharepoint import RemoteEntry, SharedFolder

_SHARE = "https://hkustconnect-my.sharepoint.com/:f:/g/personal/wchengad_connect_ust_hk/"


@dataclass(frozen=True)
class Subset:
    name: str
    url: str
    protected: bool  # the share link asks for a password
    folder: str  # where its files go, relative to the root
    extract: bool  # extract (and delete) downloaded archives
    strip_root: str | None  # archive top folder whose contents merge into the root
    description: str


SUBSETS: dict[str, Subset] = {s.name: s for s in (
    Subset("test10", _SHARE + "Er9_MPspGvpKlrFbVnmwnbEBloYJN7z9D0rP4Ms8LUcYKA", False, "", True, None,
           "10 test subjects (public)"),
    Subset("train40", _SHARE + "Et-eRSKLr09OjUPUTiJW0zAB1yWo1kx_qr7t1FsG2cuv2g", True, "", True, None,
           "40 training subjects (password from the authors)"),
    Subset("smpl_depth", _SHARE + "Eju1mH_WFLtMknBzuii8mtIBVAzxUQMCWIaLl67AGySoOA?e=MsVwJG", False, "", True,
           "GeneBody", "SMPL-X depth maps, merged into <root>/<subject>/smpl_depth"),
    Subset("pretrained_models", _SHARE + "EpsK3TaBfGBBgtDlcWV6nxABMDT9C1qe2fE6EUxoTkQYkQ", False,
           "pretrained_models", False, None, "checkpoints -> <root>/pretrained_models/<method>/"),
)}

PASSWORD_ENV = "GENEBODY_PASSWORD"


def access_message(subset: str = "train40") -> str:
    """How to get and pass credentials for a protected subset."""
    return (
        f"GeneBody {subset} is password-protected. To obtain access, download the GeneBody Dataset Release "
        "Agreement (docs/GeneBody_Dataset_Release_Agreement.pdf in github.com/generalizable-neural-performer/gnr; "
        "see its docs/Dataset.md), read, complete and sign it, and email it from an institutional address to Wei "
        "Cheng (wchengad@connect.ust.hk), cc Kwan-Yee Lin (linjunyi@sensetime.com), subject \"GeneBody "
        "Agreement\"; the authors reply with the password.\n"
        "Then pass it to bench: `bench data download genebody --subset train40 --root DIR --password PASSWORD` "
        f"or set ${PASSWORD_ENV}. bench submits the share's password form over plain HTTP; if SharePoint changes "
        "that form, open the share link in a browser, enter the password there, export the browser's cookies for "
        "hkustconnect-my.sharepoint.com (cookies.txt or JSON, e.g. with a cookie-export extension, or the Cookie "
        "header from the developer tools) and pass `--cookies FILE`."
    )


def parse_subsets(subsets: Iterable[str] | str) -> list[str]:
    """Subset names from names and comma lists, in order, without repeats; unknown names raise ValueError."""
    if isinstance(subsets, str):
        subsets = [subsets]
    names: list[str] = []
    for item in subsets:
        for name in filter(None, (s.strip() for s in item.split(","))):
            if name not in SUBSETS:
                raise ValueError(f"unknown GeneBody subset {name!r}; choose from {', '.join(SUBSETS)}")
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"no subset given; choose from {', '.join(SUBSETS)}")
    return names


#: progress(stage, subset, path, done, total): stage is one of list, skip, download, verify, extract, done, failed
Progress = Callable[[str, str, str, int, "int | None"], None]


def download_genebody(root: str | Path, subsets: Iterable[str] | str = ("test10",), *, password: str | None = None,
                      cookies=None, base_urls: Mapping[str, str] | None = None, progress: Progress | None = None,
                      retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
                      sleep: Callable[[float], None] = time.sleep) -> DownloadReport:
    """Fetch GeneBody ``subsets`` into ``root``; returns a :class:`DownloadReport`.

    ``password``: the train40 share password (the CLI also reads ``$GENEBODY_PASSWORD``). ``cookies``: a browser
    cookie export (path, ``{name: value}`` dict or ``CookieJar``) for shares opened in a browser instead.
    ``base_urls``: ``{subset: share link}`` overrides (mirrors, tests). ``retries``/``backoff``: consecutive
    failed attempts per request and the first wait in seconds (doubling).

    Raises :class:`AccessRequired` up front when a protected subset is asked for without credentials (and when the
    share rejects them), :class:`DownloadIncomplete` after all files were tried if any failed (hash mismatch,
    unsafe archive, connection that kept failing); its ``report`` lists every file's outcome.
    """
    root = Path(root)
    names = parse_subsets(subsets)
    urls = {name: spec.url for name, spec in SUBSETS.items()}
    urls.update(base_urls or {})
    for name in names:
        if SUBSETS[name].protected and not password and cookies is None:
            raise AccessRequired(access_message(name))
    root.mkdir(parents=True, exist_ok=True)
    report = DownloadReport(root)
    emit = progress or (lambda *a: None)
    for name in names:
        _download_subset(SUBSETS[name], urls[name], root, report, emit, password=password, cookies=cookies,
                         retries=retries, backoff=backoff, timeout=timeout, sleep=sleep)
    if report.failed:
        raise DownloadIncomplete(report)
    return report


def _download_subset(spec: Subset, url: str, root: Path, report: DownloadReport, emit: Progress, *, password,
                     cookies, retries, backoff, timeout, sleep) -> None:
    # a fresh jar per share: the guest cookie one link sets must not replace the cookies given for another
    jar = load_cookies(cookies, url) if cookies is not None else None
    http = HttpSession(cookies=jar, timeout=timeout, retries=retries, backoff=backoff, sleep=sleep)
    share = SharedFolder(url, http, password=password)
    try:
        entries = share.walk()
    except AccessRequired as e:
        raise AccessRequired(f"{e}\n\n{access_message(spec.name)}") from e
    emit("list", spec.name, "", len(entries), None)
    target = root / spec.folder
    manifest = Manifest(root, spec.name)
    for entry in entries:
        try:
            _one_file(spec, share, entry, target, manifest, report, emit, retries=retries, backoff=backoff)
        except AccessRequired:
            raise
        except DownloadError as e:  # hash mismatch, unsafe archive, a connection that kept failing
            report.add(spec.name, entry.path, "failed", 0, str(e))
            emit("failed", spec.name, entry.path, 0, None)


def _one_file(spec: Subset, share: SharedFolder, entry: RemoteEntry, target: Path, manifest: Manifest,
              report: DownloadReport, emit: Progress, *, retries: int, backoff: float) -> None:
    dest = target.joinpath(*PurePosixPath(entry.path).parts)
    remote = share.resolve(entry)
    if manifest.is_done(remote, dest):
        report.add(spec.name, entry.path, "skipped")
        emit("skip", spec.name, entry.path, remote.size, remote.size)
        return
    if dest.is_file() and dest.stat().st_size == remote.size and (
            not remote.quick_xor_hash or quickxor_file(dest) == remote.quick_xor_hash):
        status, nbytes = "present", 0  # e.g. downloaded before, interrupted before extraction
    else:
        fresh = [remote]
        result = fetch_file(share.http, lambda: fresh.pop() if fresh else share.resolve(entry), dest,
                            retries=retries, backoff=backoff,
                            progress=lambda done, total: emit("download", spec.name, entry.path, done, total))
        remote = result.remote
        status, nbytes = ("resumed" if result.resumed else "downloaded"), result.bytes_received
    detail = ""
    if spec.extract and is_archive(dest):
        emit("extract", spec.name, entry.path, 0, None)
        files = extract_archive(dest, dest.parent, strip_root=spec.strip_root)
        dest.unlink()
        manifest.record(remote, "extracted")
        detail = f"extracted {len(files)} files"
    else:
        manifest.record(remote, "kept")
    report.add(spec.name, entry.path, status, nbytes, detail)
    emit("done", spec.name, entry.path, remote.size, remote.size)
