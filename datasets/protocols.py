"""Evaluation protocols as data: which views feed a method, which are scored, which frames, how images are cut.

Each protocol is a JSON file in ``datasets/protocols/`` (package data) named ``<name>.json``. They record what the
published code does (see ``shared/research/gnr.md`` section 3), so a run says "genebody-gnr" instead of repeating a
dozen settings, and the settings it used are saved with it (:meth:`EvalProtocol.to_dict`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Sequence

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
TARGET_MODES = ("all-but-sources", "all")
CROP_MODES = ("gnr-square", "none")
AGGREGATION_LEVELS = ("view", "frame", "subject")
# how the scorer restricts metrics (see bench.harness.scoring.metric_masks): "none" = whole prepared image;
# "smpl-box" = Neural Body / NHP: PSNR over pixels whose ray hits the padded body box, SSIM and LPIPS on the
# bounding rectangle of those pixels with everything outside the box set to the background;
# "smpl-box-whole" = Neural Body's eval_whole_img: outside-box pixels set to the background, whole image scored
METRIC_MASKS = ("none", "smpl-box", "smpl-box-whole")


class ProtocolError(ValueError):
    """A protocol file or a protocol applied to a capture is inconsistent."""


@dataclass(frozen=True)
class EvalProtocol:
    name: str
    dataset: str
    description: str
    source_views: tuple[str, ...]  # view ids handed to generalizable methods
    # "all-but-sources" | "all" | tuple of view ids; the JSON key is "targets" (the method targets() applies it)
    target_mode: object = "all-but-sources"
    frame_step: int = 1
    frame_offset: int = 0
    crop: str = "gnr-square"
    crop_size: int = 512
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB in [0,1] outside the person
    split: str = "test"
    aggregation: tuple[str, ...] = AGGREGATION_LEVELS  # mean over views, then frames, then subjects
    notes: str = ""
    metric_mask: str = "none"  # one of METRIC_MASKS
    # metres added to each side of the body's world AABB for the "smpl-box" masks (Neural Body pads world z only)
    box_padding: tuple[float, float, float] = (0.0, 0.0, 0.05)
    # explicit targets only: a listed view the capture lacks is replaced by this one (JSON: {"20": "21"}); NHP
    # scores camera 21 on ZJU's 313/315, which have no camera 20
    target_substitutes: tuple[tuple[str, str], ...] = ()
    # per-subject [begin, end) positions in the sorted frame list, applied before frame_offset/frame_step
    # (JSON: {"CoreView_390": [700, 1000]}); subjects not listed use every frame
    frame_ranges: tuple[tuple[str, int, int], ...] = ()

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "source_views", tuple(str(v) for v in self.source_views))
        if isinstance(self.target_mode, str):
            if self.target_mode not in TARGET_MODES:
                raise ProtocolError(f"protocol {self.name!r}: targets must be one of {TARGET_MODES} "
                                    f"or a list of view ids, got {self.target_mode!r}")
        else:
            set_(self, "target_mode", tuple(str(v) for v in self.target_mode))
            if not self.target_mode:
                raise ProtocolError(f"protocol {self.name!r}: explicit target list is empty")
        set_(self, "background", tuple(float(c) for c in self.background))
        set_(self, "aggregation", tuple(self.aggregation))
        if len(self.background) != 3 or not all(0.0 <= c <= 1.0 for c in self.background):
            raise ProtocolError(f"protocol {self.name!r}: background must be 3 values in [0,1]")
        if int(self.frame_step) < 1 or int(self.frame_offset) < 0:
            raise ProtocolError(f"protocol {self.name!r}: frame_step must be >= 1 and frame_offset >= 0")
        set_(self, "frame_step", int(self.frame_step))
        set_(self, "frame_offset", int(self.frame_offset))
        set_(self, "crop_size", int(self.crop_size))
        if self.crop not in CROP_MODES:
            raise ProtocolError(f"protocol {self.name!r}: crop must be one of {CROP_MODES}, got {self.crop!r}")
        if self.crop_size < 1:
            raise ProtocolError(f"protocol {self.name!r}: crop_size must be positive")
        if any(a not in AGGREGATION_LEVELS for a in self.aggregation):
            raise ProtocolError(f"protocol {self.name!r}: aggregation levels must come from {AGGREGATION_LEVELS}")
        if self.metric_mask not in METRIC_MASKS:
            raise ProtocolError(f"protocol {self.name!r}: metric_mask must be one of {METRIC_MASKS}, "
                                f"got {self.metric_mask!r}")
        pad = tuple(float(v) for v in self.box_padding)
        if len(pad) != 3 or any(v < 0 for v in pad):
            raise ProtocolError(f"protocol {self.name!r}: box_padding must be 3 non-negative numbers (metres)")
        set_(self, "box_padding", pad)
        subs = self.target_substitutes
        subs = subs.items() if isinstance(subs, dict) else subs
        set_(self, "target_substitutes", tuple((str(a), str(b)) for a, b in subs))
        ranges = self.frame_ranges
        ranges = [(k, *v) for k, v in ranges.items()] if isinstance(ranges, dict) else ranges
        try:
            ranges = tuple((str(s), int(b), int(e)) for s, b, e in ranges)
        except (TypeError, ValueError):
            raise ProtocolError(f"protocol {self.name!r}: frame_ranges must map subjects to [begin, end]") from None
        if any(b < 0 or e <= b for _, b, e in ranges):
            raise ProtocolError(f"protocol {self.name!r}: frame_ranges need 0 <= begin < end")
        set_(self, "frame_ranges", ranges)

    # --- selection ----------------------------------------------------------------------------------------
    def frames(self, all_frames: Sequence[str], subject: str | None = None) -> list[str]:
        """Every ``frame_step``-th frame of the sorted list, starting at index ``frame_offset``; with
        ``frame_ranges`` the subject's [begin, end) slice of the sorted list is taken first."""
        frames = sorted(all_frames)
        if self.frame_ranges:
            if subject is None:
                raise ProtocolError(f"protocol {self.name!r} selects frames per subject (frame_ranges); "
                                    "call frames(all_frames, subject=...)")
            for name, begin, end in self.frame_ranges:
                if name == subject:
                    if begin >= len(frames):
                        raise ProtocolError(f"protocol {self.name!r}: subject {subject} has {len(frames)} frames, "
                                            f"its range starts at {begin}")
                    frames = frames[begin:end]
                    break
        return frames[self.frame_offset::self.frame_step]

    def sources(self, available: Sequence[str]) -> list[str]:
        """The source view ids; raises naming any that the capture lacks."""
        have = set(available)
        missing = [v for v in self.source_views if v not in have]
        if missing:
            raise ProtocolError(f"protocol {self.name!r} needs source view(s) {missing}, which this capture "
                                f"lacks (available: {sorted(have)})")
        return list(self.source_views)

    def targets(self, available: Sequence[str]) -> list[str]:
        """Scored view ids among ``available`` (sorted). An explicit list keeps only views the capture has,
        as GNR skips views missing from a capture."""
        have = sorted(set(available))
        if self.target_mode == "all":
            return have
        if self.target_mode == "all-but-sources":
            src = set(self.source_views)
            return [v for v in have if v not in src]
        subs, out = dict(self.target_substitutes), []
        for v in self.target_mode:
            v = v if v in have or subs.get(v) not in have else subs[v]
            if v in have and v not in out:
                out.append(v)
        return out

    # --- derivation / persistence -------------------------------------------------------------------------
    def with_overrides(self, **overrides) -> "EvalProtocol":
        """A copy with some fields changed (e.g. ``crop_size=256, frame_step=1`` for small synthetic data);
        unknown keys raise. ``targets`` may be given by its JSON name."""
        overrides = _from_json_keys(overrides)
        known = _field_names()
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ProtocolError(f"protocol {self.name!r}: unknown override(s) {unknown}; "
                                f"fields: {sorted(_json_names())}")
        return replace(self, **overrides)

    def prepare(self, view, mask_for_bbox=None):
        """The view as methods and the scorer see it: the protocol's crop, resize and background.

        ``crop="gnr-square"``: GNR's square person crop resized to ``crop_size``; ``mask_for_bbox`` picks the box
        (GNR: the raw matte != 0; default: the view's own mask). ``crop="none"``: the whole image resized so its
        longer side is ``crop_size`` (ZJU-MoCap's 1024 -> 512, Neural Body's ``ratio: 0.5``).
        """
        from .crop import crop_view, resize_view

        if self.crop == "none":
            return resize_view(view, int(self.crop_size), background=tuple(self.background))
        return crop_view(view, int(self.crop_size), mask_for_bbox=mask_for_bbox, background=tuple(self.background))[0]

    def to_dict(self) -> dict:
        """JSON-ready dict with the JSON key names (what ``from_dict`` and the protocol files use)."""
        d = asdict(self)
        d["targets"] = d.pop("target_mode")
        d["target_substitutes"] = {a: b for a, b in self.target_substitutes}
        d["frame_ranges"] = {s: [b, e] for s, b, e in self.frame_ranges}
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "<dict>") -> "EvalProtocol":
        unknown = sorted(set(d) - _json_names())
        if unknown:
            raise ProtocolError(f"{source}: unknown protocol field(s) {unknown}; fields: {sorted(_json_names())}")
        d = _from_json_keys(d)
        missing = [k for k in ("name", "dataset", "description", "source_views") if k not in d]
        if missing:
            raise ProtocolError(f"{source}: missing protocol field(s) {missing}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ProtocolError(f"{source}: {e}") from None


def _field_names() -> set[str]:
    return {f.name for f in fields(EvalProtocol)}


def _json_names() -> set[str]:
    return (_field_names() - {"target_mode"}) | {"targets"}


def _from_json_keys(d: dict) -> dict:
    d = dict(d)
    if "targets" in d:
        if "target_mode" in d:
            raise ProtocolError("give 'targets' or 'target_mode', not both")
        d["target_mode"] = d.pop("targets")
    return d


def _protocol_files() -> dict[str, Path | object]:
    try:
        folder = resources.files("bench.datasets") / "protocols"
        files = {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".json")}
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        files = {}
    if not files and PROTOCOL_DIR.is_dir():
        files = {p.stem: p for p in PROTOCOL_DIR.glob("*.json")}
    return files


def list_protocols(dataset: str | None = None) -> list[str]:
    """Names of the shipped protocols (optionally of one dataset), sorted."""
    names = sorted(_protocol_files())
    if dataset is None:
        return names
    return [n for n in names if get_protocol(n).dataset == dataset]


def get_protocol(name: str) -> EvalProtocol:
    """Load ``protocols/<name>.json``; raises :class:`ProtocolError` listing the known names."""
    files = _protocol_files()
    if name not in files:
        raise ProtocolError(f"unknown protocol {name!r}; known: {sorted(files)}")
    src = files[name]
    try:
        data = json.loads(src.read_text())
    except ValueError as e:
        raise ProtocolError(f"{src}: invalid JSON ({e})") from None
    proto = EvalProtocol.from_dict(data, source=str(src))
    if proto.name != name:
        raise ProtocolError(f"{src}: file name says {name!r} but 'name' is {proto.name!r}")
    return proto
