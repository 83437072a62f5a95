"""GeneBody downloader against a loopback fake SharePoint: listing with paging, verified resumable downloads,
extraction and merging, credentials, and refusal of unsafe archives. Nothing leaves 127.0.0.1."""
from __future__ import annotations

import base64
import io
import random
import tarfile

import pytest
from click.testing import CliRunner

from bench.datasets.download import (AccessRequired, DownloadIncomplete, QuickXorHash, UnsafeArchive,
                                     download_genebody)
from bench.datasets.download.archive import extract_archive
from bench.datasets.download.cli import download_command
from bench.datasets.download.cookies import load_cookies
from fake_sharepoint import FakeSharePoint, make_tar_gz

FAST = dict(backoff=0.001, timeout=10)


def _bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def subject_files(name: str, seed: int) -> dict[str, bytes]:
    return {f"{name}/annots.npy": _bytes(seed, 300), f"{name}/image/00/0000.jpg": _bytes(seed + 1, 40_000),
            f"{name}/mask/00/mask0000.png": _bytes(seed + 2, 9_000)}


AMANDA, BARRY = subject_files("amanda", 1), subject_files("barry", 10)
SPLIT = _bytes(99, 200)


def make_test10_share() -> dict[str, bytes]:
    return {"amanda.tar.gz": make_tar_gz(AMANDA), "barry.tar.gz": make_tar_gz(BARRY), "genebody_split.npy": SPLIT}


@pytest.fixture
def fake():
    with FakeSharePoint(page_size=2) as server:
        yield server


# -- QuickXorHash ----------------------------------------------------------------------------------------------
# (size, input, digest) vectors from rclone's onedrive/quickxorhash tests; 111/222/333 wrap the 160-byte register
RCLONE_VECTORS = [
    (0, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    (1, "Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (2, "tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
    (16, "2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
    (20, "T6LYJIfDh81JrAK309H2JMJTXis=", "zBTHrspn3mEcohlJdIUAbjGNaNg="),
    (111, "jyibxJSzO6ZiZ0O1qe3tG/bvIAYssvukh9suIT5wEy1JBINVgPiqdsTW0cOpP0aUfP7mgqLfADkzI/m/GgCuVhr8oFLrOCoTx1/psBOW"
          "whltCbhUx51Icm9aH8tY4Z3ccU+6BKpYQkLCy0B/A9Zc", "hZfLIilSITC6N3e3tQ/iSgEzkto="),
    (222, "PfxMcUd0vIW6VbHG/uj/Y0W6qEoKmyBD0nYebEKazKaKG+UaDqBEcmQjbfQeVnVLuodMoPp7P7TR1htX5n2VnkHh22xDyoJ8C/ZQKiSN"
          "qQfXvh83judf4RVr9exJCud8Uvgip6aVZTaPrJHVjQhMCp/dEnGvqg0oN5OVkM2qqAXvA0teKUDhgNM71sDBVBCGXxNOR2bpbD1iM4dn"
          "uT0ey4L+loXEHTL0fqMeUcEi2asgImnlNakwenDzz0x57aBwyq3AspCFGB1ncX4yYCr/OaCcS5OKi/00WH+wNQU3",
     "QX/YEpG0gDsmhEpCdWhsxDzsfVE="),
    (333, "w0LGhqU1WXFbdavqDE4kAjEzWLGGzmTNikzqnsiXHx2KRReKVTxkv27u3UcEz9+lbMvYl4xFf2Z4aE1xRBBNd1Ke5C0zToSaYw5o4B/7"
          "X99nKK2/XaUX1byLow2aju2XJl2OpKpJg+tSJ2fmjIJTkfuYUz574dFX6/VXxSxwGH/xQEAKS5TCsBK3CwnuG1p5SAsQq3gGVozDWyjE"
          "BcWDMdy8/AIFrj/y03Lfc/RNRCQTAfZbnf2QwV7sluw4fH3XJr07UoD0YqN+7XZzidtrwqMY26fpLZnyZjnBEt1FAZWO7RnKG5asg8xR"
          "k9YaDdedXdQSJAOy6bWEWlABj+tVAigBxavaluUH8LOj+yfCFldJjNLdi90fVHkUD/m4Mr5OtmupNMXPwuG3EQlqWUVpQoYpUYKLsk7a"
          "5Mvg6UFkiH596y5IbJEVCI1Kb3D1", "e3+wo77iKcILiZegnzyUNcjCdoQ="),
]


@pytest.mark.parametrize("size,data,digest", RCLONE_VECTORS)
def test_quickxor_known_vectors_any_chunking(size, data, digest):
    raw = base64.b64decode(data)
    assert len(raw) == size
    assert QuickXorHash(raw).b64digest() == digest
    for block in (1, 7, 160, 161):
        h = QuickXorHash()
        for i in range(0, len(raw), block):
            h.update(raw[i:i + block])
        assert h.b64digest() == digest


def test_quickxor_large_input_matches_per_byte_definition():
    """The folded (vectorised) update agrees with the definition: byte n XORed in at bit (11 n) mod 160."""
    raw = _bytes(5, 5000)
    state = 0
    for n, b in enumerate(raw):
        off = (n * 11) % 160
        v = b << off
        state ^= (v & (2**160 - 1)) | (v >> 160)
    digest = bytearray(state.to_bytes(20, "little"))
    for i, b in enumerate(len(raw).to_bytes(8, "little")):
        digest[12 + i] ^= b
    h = QuickXorHash(raw[:1234])
    h.update(raw[1234:])
    assert h.digest() == bytes(digest)
    assert QuickXorHash(raw[:-1] + bytes([raw[-1] ^ 1])).digest() != bytes(digest)


# -- end to end ------------------------------------------------------------------------------------------------
def _assert_subject(root, files):
    for rel, data in files.items():
        assert (root / rel).read_bytes() == data, rel


def test_full_download_extract_merge_and_rerun(fake, tmp_path):
    urls = {
        "test10": fake.add_share("t10", make_test10_share()),
        "smpl_depth": fake.add_share("sd", {"amanda_depth.tar.gz": make_tar_gz(
            {"GeneBody/amanda/smpl_depth/00/smpl_0000.png": b"depth-a"}),
            "barry_depth.tar.gz": make_tar_gz({"GeneBody/barry/smpl_depth/00/smpl_0000.png": b"depth-b"})}),
        "pretrained_models": fake.add_share("pm", {"gnr/latest.tar": b"gnr-ckpt", "nb/amanda/latest.pth": b"nb-a",
                                                  "nb/barry/latest.pth": b"nb-b", "nt/model.pth": b"nt"}),
    }
    root = tmp_path / "GeneBody"
    events = []
    report = download_genebody(root, ["test10", "smpl_depth,pretrained_models"], base_urls=urls,
                               progress=lambda *e: events.append(e), **FAST)
    _assert_subject(root, AMANDA)
    _assert_subject(root, BARRY)
    assert (root / "genebody_split.npy").read_bytes() == SPLIT
    assert (root / "amanda/smpl_depth/00/smpl_0000.png").read_bytes() == b"depth-a"
    assert (root / "barry/smpl_depth/00/smpl_0000.png").read_bytes() == b"depth-b"
    assert not (root / "GeneBody").exists()
    assert (root / "pretrained_models/gnr/latest.tar").read_bytes() == b"gnr-ckpt"
    assert (root / "pretrained_models/nb/barry/latest.pth").read_bytes() == b"nb-b"
    leftovers = [p.name for p in root.rglob("*") if p.name.endswith((".gz", ".part")) or p.name.startswith(".extract")]
    assert leftovers == []
    assert sorted(f.status for f in report.files) == ["downloaded"] * 9
    assert fake.calls["page"] >= 2  # test10's 3 entries and pretrained_models' 3 folders span two pages
    assert ("list", "test10", "", 3, None) in events
    # a second run fetches nothing: archives are recorded as extracted, kept files are still there
    before = {k: len(v) for k, v in fake.downloads.items()}
    again = download_genebody(root, ["test10", "smpl_depth", "pretrained_models"], base_urls=urls, **FAST)
    assert {f.status for f in again.files} == {"skipped"}
    assert {k: len(v) for k, v in fake.downloads.items()} == before


def test_dropped_connection_resumes_with_range(fake, tmp_path):
    url = fake.add_share("t10", make_test10_share())
    fake.faults["amanda.tar.gz"] = ["drop:3000"]
    report = download_genebody(tmp_path, "test10", base_urls={"test10": url}, **FAST)
    _assert_subject(tmp_path, AMANDA)
    assert fake.downloads["amanda.tar.gz"] == [None, "bytes=3000-"]
    assert fake.downloads["barry.tar.gz"] == [None]
    amanda = next(f for f in report.files if f.path == "amanda.tar.gz")
    assert amanda.status == "resumed" and amanda.bytes == len(make_test10_share()["amanda.tar.gz"])


def test_server_ignoring_range_restarts_the_file(fake, tmp_path):
    url = fake.add_share("t10", make_test10_share())
    fake.faults["amanda.tar.gz"] = ["drop:3000", "norange"]
    report = download_genebody(tmp_path, "test10", base_urls={"test10": url}, **FAST)
    assert fake.downloads["amanda.tar.gz"] == [None, "bytes=3000-"]
    _assert_subject(tmp_path, AMANDA)  # the 200 answer replaced the part file instead of being appended
    assert next(f for f in report.files if f.path == "amanda.tar.gz").status == "downloaded"


def test_interrupted_run_resumes_next_time_without_refetching(fake, tmp_path):
    url = fake.add_share("t10", make_test10_share())
    fake.faults["barry.tar.gz"] = ["drop:5000", "503", "503"]  # cut off, then the server stays busy
    with pytest.raises(DownloadIncomplete, match="barry.tar.gz") as err:
        download_genebody(tmp_path, "test10", base_urls={"test10": url}, retries=1, **FAST)
    assert [f.path for f in err.value.report.failed] == ["barry.tar.gz"]
    assert (tmp_path / "barry.tar.gz.part").stat().st_size == 5000
    _assert_subject(tmp_path, AMANDA)
    report = download_genebody(tmp_path, "test10", base_urls={"test10": url}, retries=1, **FAST)
    assert fake.downloads["amanda.tar.gz"] == [None]  # finished files are not fetched again
    assert fake.downloads["genebody_split.npy"] == [None]
    assert fake.downloads["barry.tar.gz"][-1] == "bytes=5000-"
    assert {f.path: f.status for f in report.files} == {
        "amanda.tar.gz": "skipped", "barry.tar.gz": "resumed", "genebody_split.npy": "skipped"}
    _assert_subject(tmp_path, BARRY)
    assert not (tmp_path / "barry.tar.gz.part").exists()


def test_corrupted_file_is_reported_and_deleted(fake, tmp_path):
    url = fake.add_share("t10", make_test10_share())
    fake.corrupt.add("barry.tar.gz")
    with pytest.raises(DownloadIncomplete) as err:
        download_genebody(tmp_path, "test10", base_urls={"test10": url}, **FAST)
    (bad,) = err.value.report.failed
    assert bad.path == "barry.tar.gz" and "quickXorHash" in bad.detail and "barry.tar.gz" in str(err.value)
    assert not (tmp_path / "barry.tar.gz").exists() and not (tmp_path / "barry.tar.gz.part").exists()
    assert not (tmp_path / "barry").exists()
    _assert_subject(tmp_path, AMANDA)  # the other files still completed


def test_train40_without_credentials_explains_access(tmp_path):
    with pytest.raises(AccessRequired) as err:  # raised before any request (the URL is unreachable anyway)
        download_genebody(tmp_path, ["test10", "train40"], base_urls={"test10": "http://127.0.0.1:9/x"})
    msg = str(err.value)
    for needle in ("Release Agreement", "wchengad@connect.ust.hk", "GeneBody Agreement", "--password",
                   "GENEBODY_PASSWORD", "--cookies"):
        assert needle in msg
    assert list(tmp_path.iterdir()) == []


def test_train40_password_form_and_cookies(fake, tmp_path):
    url = fake.add_share("t40", {"zhanghao.tar.gz": make_tar_gz({"zhanghao/annots.npy": b"z"})}, password="s3cret")
    with pytest.raises(AccessRequired, match="incorrect"):
        download_genebody(tmp_path / "a", "train40", password="wrong", base_urls={"train40": url}, **FAST)
    download_genebody(tmp_path / "b", "train40", password="s3cret", base_urls={"train40": url}, **FAST)
    assert (tmp_path / "b/zhanghao/annots.npy").read_bytes() == b"z"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\tFedAuth\tauth-t40\n")
    posts = fake.calls["password"]
    download_genebody(tmp_path / "c", "train40", cookies=cookies, base_urls={"train40": url}, **FAST)
    assert (tmp_path / "c/zhanghao/annots.npy").read_bytes() == b"z"
    assert fake.calls["password"] == posts  # the cookie alone opened the share
    stale = tmp_path / "stale.txt"
    stale.write_text("FedAuth=expired")
    with pytest.raises(AccessRequired, match="password"):
        download_genebody(tmp_path / "d", "train40", cookies=stale, base_urls={"train40": url}, **FAST)


def test_path_traversal_archive_is_refused(fake, tmp_path):
    evil = make_tar_gz({"amanda/ok.txt": b"fine", "../escape.txt": b"pwned"})
    url = fake.add_share("t10", {"evil.tar.gz": evil})
    root = tmp_path / "root"
    with pytest.raises(DownloadIncomplete, match=r"evil.tar.gz.*\.\./escape.txt"):
        download_genebody(root, "test10", base_urls={"test10": url}, **FAST)
    assert not (tmp_path / "escape.txt").exists()
    assert not (root / "amanda").exists()  # nothing from a refused archive lands in the root


def _tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["absolute", "symlink_out", "device"])
def test_extract_archive_refuses_unsafe_members(tmp_path, kind):
    info = tarfile.TarInfo("/tmp/abs.txt" if kind == "absolute" else "link")
    data = b""
    if kind == "absolute":
        data = b"x"
        info.size = 1
    elif kind == "symlink_out":
        info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
    else:
        info.type = tarfile.CHRTYPE
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_with(info, data))
    with pytest.raises(UnsafeArchive):
        extract_archive(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_cookie_formats(tmp_path):
    url = "https://hkustconnect-my.sharepoint.com/:f:/g/personal/x/abc"
    header = tmp_path / "h.txt"
    header.write_text("Cookie: FedAuth=aaa; rtFa=bbb\n")
    jar = load_cookies(header, url)
    assert {c.name: (c.value, c.domain) for c in jar} == {
        "FedAuth": ("aaa", "hkustconnect-my.sharepoint.com"), "rtFa": ("bbb", "hkustconnect-my.sharepoint.com")}
    js = tmp_path / "c.json"
    js.write_text('[{"name": "FedAuth", "value": "v", "domain": ".sharepoint.com", "path": "/", "secure": true}]')
    (c,) = list(load_cookies(js, url))
    assert (c.name, c.domain, c.secure) == ("FedAuth", ".sharepoint.com", True)
    bad = tmp_path / "bad.txt"
    bad.write_text("a\tb\tc\n")
    with pytest.raises(ValueError, match="bad.txt"):
        load_cookies(bad, url)


def test_cli_subset_words_after_one_flag(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("GENEBODY_PASSWORD", raising=False)
    t10 = fake.add_share("t10", make_test10_share())
    sd = fake.add_share("sd", {"d.tar.gz": make_tar_gz({"GeneBody/amanda/smpl_depth/00/smpl_0000.png": b"d"})})
    runner = CliRunner()
    res = runner.invoke(download_command, ["genebody", "--subset", "test10", "smpl_depth", "--root", str(tmp_path),
                                           "--share-url", f"test10={t10}", "--share-url", f"smpl_depth={sd}"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "amanda/smpl_depth/00/smpl_0000.png").read_bytes() == b"d"
    _assert_subject(tmp_path, BARRY)
    res = runner.invoke(download_command, ["genebody", "--subset", "train40", "--root", str(tmp_path / "x")])
    assert res.exit_code == 2 and "Release Agreement" in res.output
    res = runner.invoke(download_command, ["genebody", "test11", "--root", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown GeneBody subset 'test11'" in res.output
