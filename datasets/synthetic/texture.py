"""Appearance of a synthetic person: per-subject palettes and garment patterns painted on the rest-pose surface.

Colour is a function of the canonical (rest-pose, model-space) point and its surface label, so patterns move
with the body; the renderer evaluates it per pixel from barycentrically interpolated canonical points, which keeps
stripes crisp at any mesh resolution. Shading is Lambertian with fixed world lights, so appearance is
view-independent (what multi-view methods assume) while patterns make view resampling non-trivial.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body_model import BOTTOM, HAIR, SHOES, SKIN, TOP

_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.90, 0.69, 0.55], [0.78, 0.56, 0.40], [0.58, 0.39, 0.26],
                        [0.38, 0.25, 0.17]])
_HAIR = np.array([[0.06, 0.05, 0.05], [0.22, 0.13, 0.07], [0.45, 0.30, 0.15], [0.80, 0.66, 0.40],
                  [0.55, 0.22, 0.10], [0.62, 0.62, 0.62], [0.30, 0.22, 0.55]])
PATTERNS_TOP = ("stripes", "checks", "dots", "plaid", "zigzag")
PATTERNS_BOTTOM = ("solid", "stripes", "checks", "dots", "denim")


def _hsv(h, s, v) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _random_colour(rng: np.random.Generator, sat=(0.35, 0.9), val=(0.3, 0.95)) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val))


def _contrasting(rng: np.random.Generator, c: np.ndarray) -> np.ndarray:
    """A second colour clearly different in brightness or hue from ``c``."""
    for _ in range(20):
        d = _random_colour(rng, sat=(0.1, 0.9), val=(0.15, 1.0))
        if np.abs(d - c).sum() > 0.7:
            return d
    return 1.0 - c


def _edge(x: np.ndarray, width: float = 0.08) -> np.ndarray:
    """Soft 0/1 step of a value in periodic units (light anti-aliasing of pattern edges)."""
    return np.clip(x / width + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class Pattern:
    kind: str  # solid | stripes | checks | dots | plaid | zigzag | denim
    colours: np.ndarray  # (3,3) base, accent, third
    period: float  # metres
    direction: np.ndarray  # (3,) unit: stripe normal / lattice orientation
    duty: float = 0.5

    @classmethod
    def sample(cls, rng: np.random.Generator, kinds: tuple[str, ...]) -> "Pattern":
        kind = str(rng.choice(kinds))
        base = _random_colour(rng)
        accent = _contrasting(rng, base)
        third = _contrasting(rng, accent)
        if kind == "denim":
            base = _hsv(rng.uniform(0.57, 0.64), rng.uniform(0.4, 0.75), rng.uniform(0.3, 0.6))
            accent = base * 1.25
        tilt = np.radians(rng.uniform(-35, 35)) if kind in ("stripes", "zigzag") else np.radians(rng.uniform(0, 45))
        axis = np.array([np.sin(tilt), np.cos(tilt), 0.0])  # mostly horizontal stripes, some diagonal
        period = float(rng.uniform(0.035, 0.09) if kind != "dots" else rng.uniform(0.04, 0.07))
        return cls(kind, np.clip(np.stack([base, accent, third]), 0, 1), period, axis,
                   float(rng.uniform(0.3, 0.6)))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """Colours (N,3) of canonical points (N,3)."""
        c0, c1, c2 = self.colours
        u = p @ self.direction / self.period  # (N,) along the stripe normal
        perp = np.cross(self.direction, [0.0, 0.0, 1.0])
        v = p @ perp / self.period
        if self.kind == "solid":
            return np.broadcast_to(c0, p.shape).copy()
        if self.kind == "stripes":
            f = u - np.floor(u)
            m = _edge(self.duty - f) * _edge(f)  # 1 inside the accent stripe
            thin = _edge(0.06 - np.abs(f - 0.75))  # a thin third-colour pinstripe
            out = c0 + (c1 - c0) * m[:, None]
            return out + (c2 - out) * thin[:, None]
        if self.kind == "zigzag":
            w = u + 0.5 * np.abs((v / 1.5) - np.floor(v / 1.5) - 0.5) * 2
            f = w - np.floor(w)
            m = _edge(self.duty - f) * _edge(f)
            return c0 + (c1 - c0) * m[:, None]
        if self.kind == "checks":
            q = p / self.period
            parity = (np.floor(q[:, 0]) + np.floor(q[:, 1]) + np.floor(q[:, 2])) % 2
            return np.where(parity[:, None] > 0, c1, c0)
        if self.kind == "plaid":
            fu = u - np.floor(u)
            fv = v - np.floor(v)
            bu = _edge(0.35 - fu) * _edge(fu)
            bv = _edge(0.35 - fv) * _edge(fv)
            line = np.maximum(_edge(0.05 - np.abs(fu - 0.7)), _edge(0.05 - np.abs(fv - 0.7)))
            out = c0 + (c1 - c0) * (0.55 * bu + 0.45 * bv)[:, None]
            return out + (c2 - out) * line[:, None]
        if self.kind == "dots":
            q = p / self.period
            q[:, 1] += 0.5 * (np.floor(q[:, 0]) % 2)  # staggered rows
            d = np.linalg.norm(q - np.round(q), axis=1)
            m = _edge(0.28 - d, 0.04)
            return c0 + (c1 - c0) * m[:, None]
        if self.kind == "denim":  # fine diagonal twill
            tw = 0.5 + 0.5 * np.sin(2 * np.pi * (p[:, 0] + p[:, 1] + p[:, 2]) / 0.014)
            return c0 * (0.92 + 0.14 * tw[:, None])
        raise ValueError(f"unknown pattern kind {self.kind!r}")


@dataclass(frozen=True)
class Appearance:
    skin: np.ndarray  # (3,)
    hair: np.ndarray
    lips: np.ndarray
    iris: np.ndarray
    top: Pattern
    bottom: Pattern
    inner: Pattern  # shirt under an open jacket
    shoes: np.ndarray
    sole: np.ndarray
    print_colour: np.ndarray  # chest print
    print_kind: str  # disc | star | band | none
    print_size: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Appearance":
        w = rng.random()
        k = w * (len(_SKIN_TONES) - 1)
        i = min(int(k), len(_SKIN_TONES) - 2)
        skin = _SKIN_TONES[i] + (_SKIN_TONES[i + 1] - _SKIN_TONES[i]) * (k - i)
        hair = _HAIR[rng.choice(len(_HAIR), p=[0.25, 0.25, 0.15, 0.12, 0.09, 0.08, 0.06])] * rng.uniform(0.85, 1.15)
        top = Pattern.sample(rng, PATTERNS_TOP)
        bottom = Pattern.sample(rng, PATTERNS_BOTTOM)
        inner = Pattern.sample(rng, ("solid", "stripes"))
        shoes = _random_colour(rng, sat=(0.0, 0.8), val=(0.1, 0.9))
        return cls(
            skin=skin, hair=np.clip(hair, 0, 1), lips=np.clip(skin * np.array([0.85, 0.55, 0.55]), 0, 1),
            iris=_HAIR[rng.integers(3)] + 0.05, top=top, bottom=bottom, inner=inner, shoes=shoes,
            sole=np.array([0.9, 0.9, 0.88]) if rng.random() < 0.5 else np.array([0.12, 0.12, 0.12]),
            print_colour=_contrasting(rng, top.colours[0]),
            print_kind=str(rng.choice(["disc", "star", "band", "none"], p=[0.3, 0.3, 0.2, 0.2])),
            print_size=float(rng.uniform(0.04, 0.07)))

    def to_dict(self) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, Pattern):
                out[k] = {"kind": v.kind, "colours": v.colours.round(3).tolist(), "period": round(v.period, 4)}
            elif isinstance(v, np.ndarray):
                out[k] = v.round(3).tolist()
            else:
                out[k] = v
        return out


@dataclass(frozen=True)
class FaceLayout:
    """Where the painted facial features sit on the rest-pose head (model space, true size)."""

    eyes: np.ndarray  # (2,3)
    mouth: np.ndarray  # (3,)
    head_centre: np.ndarray  # (3,)
    chest: np.ndarray  # (3,) front of the chest, for prints
    jacket: bool  # open-front jacket: show the inner shirt down the middle
    floor_y: float  # for shoe soles


def albedo(app: Appearance, face: FaceLayout, p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Base colours (N,3) in [0,1] of canonical points ``p`` (N,3) with surface ``labels`` (N,)."""
    out = np.zeros((len(p), 3))
    sk = labels == SKIN
    if sk.any():
        q = p[sk]
        c = np.broadcast_to(app.skin, q.shape).copy()
        # painted face: eyes (white + iris), brows, lips
        front = q[:, 2] > face.head_centre[2]
        for e in face.eyes:
            d = np.linalg.norm((q - e) * np.array([1.0, 1.5, 1.0]), axis=1)
            c = np.where(((d < 0.013) & front)[:, None], np.array([0.93, 0.92, 0.9]), c)
            c = np.where(((d < 0.007) & front)[:, None], app.iris, c)
            brow = np.linalg.norm((q - e - np.array([0.0, 0.02, 0.0])) * np.array([0.6, 4.0, 1.0]), axis=1)
            c = np.where(((brow < 0.014) & front)[:, None], app.hair * 0.8, c)
        dm = np.linalg.norm((q - face.mouth) * np.array([0.55, 2.2, 1.0]), axis=1)
        c = np.where(((dm < 0.012) & front)[:, None], app.lips, c)
        # a little tone variation (cheeks, palms) so skin is not flat
        c = c * (0.96 + 0.04 * np.sin(q[:, 1:2] * 40.0))
        out[sk] = c
    m = labels == HAIR
    if m.any():
        q = p[m]
        strands = 0.9 + 0.1 * np.sin((q[:, 0] * 260 + np.sin(q[:, 1] * 40) * 3))
        out[m] = app.hair * strands[:, None]
    m = labels == TOP
    if m.any():
        q = p[m]
        c = app.top(q)
        rel = q - face.chest
        if face.jacket:
            open_front = (np.abs(q[:, 0]) < 0.045) & (q[:, 2] > face.chest[2] - 0.06)
            c = np.where(open_front[:, None], app.inner(q), c)
            zipper = (np.abs(np.abs(q[:, 0]) - 0.045) < 0.004) & (q[:, 2] > face.chest[2] - 0.06)
            c = np.where(zipper[:, None], app.print_colour * 0.6, c)
        elif app.print_kind != "none":
            fr = q[:, 2] > face.chest[2] - 0.05
            r = np.hypot(rel[:, 0], rel[:, 1])
            if app.print_kind == "disc":
                inside = r < app.print_size
            elif app.print_kind == "star":
                ang = np.arctan2(rel[:, 1], rel[:, 0])
                inside = r < app.print_size * (0.6 + 0.4 * np.cos(5 * ang))
            else:
                inside = np.abs(rel[:, 1]) < app.print_size * 0.4
            c = np.where((inside & fr)[:, None], app.print_colour, c)
        out[m] = c
    m = labels == BOTTOM
    if m.any():
        out[m] = app.bottom(p[m])
    m = labels == SHOES
    if m.any():
        q = p[m]
        sole = q[:, 1] < face.floor_y + 0.012
        out[m] = np.where(sole[:, None], app.sole, app.shoes)
    return np.clip(out, 0.0, 1.0)


# Fixed world lights (GeneBody's world is y-down, so -y points up): a key light from above and a weak fill.
KEY_DIR = np.array([0.35, -0.8, 0.45]) / np.linalg.norm([0.35, -0.8, 0.45])
FILL_DIR = np.array([-0.4, -0.2, -0.7]) / np.linalg.norm([-0.4, -0.2, -0.7])
AMBIENT, KEY, FILL = 0.42, 0.55, 0.18


def shade(albedo_rgb: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Lambertian shading (N,3) of albedos under the fixed lights, given unit world normals (N,3)."""
    lam = AMBIENT + KEY * np.clip(normals @ KEY_DIR, 0, None) + FILL * np.clip(normals @ FILL_DIR, 0, None)
    return np.clip(albedo_rgb * lam[:, None], 0.0, 1.0)
