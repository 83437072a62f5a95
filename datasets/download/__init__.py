"""Dataset download: GeneBody from its OneDrive-for-Business shares (listing, resumable verified download,
safe extraction). Nothing here touches the network at import time."""
from .errors import AccessRequired, DownloadError, DownloadIncomplete, HashMismatch, ShareError, UnsafeArchive
from .genebody import SUBSETS, access_message, download_genebody, parse_subsets
from .quickxor import QuickXorHash, quickxor_file
from .report import DownloadReport, FileOutcome

__all__ = [
    "AccessRequired", "DownloadError", "DownloadIncomplete", "HashMismatch", "ShareError", "UnsafeArchive",
    "SUBSETS", "access_message", "download_genebody", "parse_subsets", "QuickXorHash", "quickxor_file",
    "DownloadReport", "FileOutcome",
]
