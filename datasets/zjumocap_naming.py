"""ZJU-MoCap's folder and file names, which the reader parses and the writer produces.

Most sequences keep camera ``n`` (1-based) in ``Camera_B<n>/`` with 0-based 6-digit frame numbers
(``000123.jpg``); ``CoreView_313`` and ``315`` use ``Camera (<n>)/`` with long 1-based names
(``CoreView_313_Camera_(1)_0001_<date>_<time>.jpg``) and lack cameras 20 and 21. View ids are the 0-based camera
number as 2 digits (``Camera_B1`` -> ``"00"``).
"""
from __future__ import annotations

import re

#: sequences whose cameras live in "Camera (N)" folders with long, 1-based file names (and 21 cameras)
PAREN_SUBJECTS = frozenset({"CoreView_313", "CoreView_315"})
#: camera ids (0-based) that 313 and 315 lack: Camera (20) and Camera (21)
PAREN_MISSING_VIEWS = frozenset({"19", "20"})
_TIMESTAMP = "2019-08-23_16-08-50.592"
_FOLDER_RE = (re.compile(r"^Camera_B(\d+)$"), re.compile(r"^Camera \((\d+)\)$"))


def uses_paren_naming(subject: str) -> bool:
    return subject in PAREN_SUBJECTS


def camera_folder(view_id: str, paren: bool) -> str:
    """``"Camera_B<n>"`` or ``"Camera (<n>)"`` for the 2-digit 0-based camera id (n = id + 1)."""
    n = int(view_id) + 1
    return f"Camera ({n})" if paren else f"Camera_B{n}"


def parse_camera_folder(folder: str) -> str | None:
    """``"Camera_B8"`` / ``"Camera (8)"`` -> view id ``"07"``; None for anything else."""
    for rx in _FOLDER_RE:
        m = rx.match(folder)
        if m and int(m.group(1)) >= 1:
            return f"{int(m.group(1)) - 1:02d}"
    return None


def image_name(subject: str, view_id: str, number: int, paren: bool) -> str:
    """File name of frame ``number`` (the integer Neural Body reads back: 0-based, or 1-based for 313/315)."""
    if paren:
        return f"{subject}_Camera_({int(view_id) + 1})_{number:04d}_{_TIMESTAMP}.jpg"
    return f"{number:06d}.jpg"


def frame_number(file_name: str) -> int:
    """The integer Neural Body reads from an image name: ``000123.jpg`` -> 123, ``..._(1)_0001_...jpg`` -> 1."""
    stem = file_name.rsplit(".", 1)[0]
    if stem.isdigit():
        return int(stem)
    parts = file_name.split("_")
    if len(parts) > 4 and parts[4].isdigit():
        return int(parts[4])
    raise ValueError(f"cannot read a frame number from {file_name!r}")
