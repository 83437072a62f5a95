"""Procedural body surfaces: smooth unions of capsules and ellipsoids, meshed once per subject in the rest pose.

Each subject gets two watertight rest-pose meshes sharing one skeleton:

* the naked *body* (skin only), handed to methods as the fitted SMPL-X mesh;
* the clothed *true* surface that is rendered: garments are inflated, clipped copies of the skin primitives
  (sleeves and trouser legs end at planes across the bone), plus hair, skirt and shoe volumes.

Both are built by marching cubes on a signed-distance grid, then skinned with weights that fall off with the
distance to each bone's primitives, so every vertex follows the bones it sits on and blends across joints.
Model space is the skeleton's (+y up, +x subject's left, +z forward, pelvis at the origin, metres).

Length: one model; about half the file is the body's and garments' primitive tables, which read best beside the
code that meshes and skins them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from skimage.measure import marching_cubes

from .skeleton import NUM_JOINTS, J, RestSkeleton, Shape

# surface labels of the clothed mesh (the texture looks them up)
SKIN, HAIR, TOP, BOTTOM, SHOES = 0, 1, 2, 3, 4
LABEL_NAMES = ("skin", "hair", "top", "bottom", "shoes")


@dataclass(frozen=True)
class Prim:
    """A tapered capsule with an elliptic cross-section (an ellipsoid when ``a == b`` and ``radii`` is set).

    ``flat_axis``/``flat`` squash the cross-section along one direction (torso depth, flat hands); caps > 1
    flatten the round ends (``cap_a`` at a, ``cap_b`` at b); ``planes`` clip the solid: keep ``n . p <= offset``.
    """

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    owner: int  # joint whose rotation carries this piece
    part: str = ""
    flat_axis: np.ndarray | None = None
    flat: float = 1.0
    flat_b: float | None = None  # cross-section ratio at b (defaults to ``flat``)
    cap_a: float = 1.0
    cap_b: float = 1.0
    radii: np.ndarray | None = None  # (3,) for an axis-aligned ellipsoid centred at a
    planes: tuple = ()  # ((n (3,), offset), ...)

    def inflated(self, th: float, planes: tuple = ()) -> "Prim":
        """A garment layer ``th`` metres thick over this piece, optionally clipped by ``planes``."""
        if self.radii is not None:
            return replace(self, radii=self.radii + th, planes=self.planes + tuple(planes))
        flat, flat_b = 1.0, None
        if self.flat_axis is not None:
            fb = self.flat if self.flat_b is None else self.flat_b
            flat = (self.ra * self.flat + th) / (self.ra + th)
            flat_b = (self.rb * fb + th) / (self.rb + th)
        return replace(self, ra=self.ra + th, rb=self.rb + th, flat=flat, flat_b=flat_b,
                       planes=self.planes + tuple(planes))

    def cut_along(self, t: float, keep: str = "below") -> tuple:
        """Clip plane across the bone at parameter ``t`` (0 at a, 1 at b); keep the part nearer a ('below')."""
        d = (self.b - self.a) / np.linalg.norm(self.b - self.a)
        p = self.a + t * (self.b - self.a)
        return ((d, float(d @ p)),) if keep == "below" else ((-d, float(-d @ p)),)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.radii is not None:
            r = self.radii
            return self.a - r, self.a + r
        r = max(self.ra, self.rb)
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r

    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Approximate signed distance (N,) of points (N,3); negative inside."""
        if self.radii is not None:  # ellipsoid (Quilez's bound)
            q = p - self.a
            k0 = np.linalg.norm(q / self.radii, axis=1)
            k1 = np.linalg.norm(q / self.radii**2, axis=1)
            d = k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)
        else:
            ab = self.b - self.a
            L = float(np.linalg.norm(ab))
            u = ab / L
            q = p - self.a
            s = q @ u  # (N,) position along the bone
            t = np.clip(s / L, 0.0, 1.0)
            over = s - t * L  # beyond the ends
            radial = q - s[:, None] * u
            flat = 1.0
            if self.flat_axis is not None:
                flat = self.flat + ((self.flat if self.flat_b is None else self.flat_b) - self.flat) * t
                e = self.flat_axis - (self.flat_axis @ u) * u
                e = e / np.linalg.norm(e)
                radial = radial + ((radial @ e) * (1.0 / flat - 1.0))[:, None] * e
            r = self.ra + (self.rb - self.ra) * t
            cap = np.where(over < 0, self.cap_a, self.cap_b)
            d = np.sqrt((radial**2).sum(1) + (cap * over) ** 2) - r
            d = d * np.minimum(flat, 1.0)
        for n, off in self.planes:
            d = np.maximum(d, p @ n - off)
        return d


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (blends two distance fields over a band of width k)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


@dataclass(frozen=True)
class Outfit:
    """What a subject wears; thicknesses in metres."""

    top: str = "tshirt"  # tshirt | longsleeve | tank | jacket
    top_thickness: float = 0.015
    top_hem: float = -0.05  # model-space y of the shirt hem (relative to the pelvis)
    bottom: str = "trousers"  # trousers | shorts | skirt
    bottom_thickness: float = 0.018
    skirt_length: float = 0.45  # fraction of the thigh+calf covered by a skirt
    skirt_flare: float = 0.08
    hair: str = "short"  # short | long | bun | buzz
    hair_volume: float = 0.018
    boots: bool = False

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Outfit":
        top = str(rng.choice(["tshirt", "longsleeve", "tank", "jacket"], p=[0.35, 0.25, 0.15, 0.25]))
        bottom = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.55, 0.2, 0.25]))
        return cls(
            top=top,
            top_thickness=float(rng.uniform(0.028, 0.036) if top == "jacket" else rng.uniform(0.01, 0.02)),
            top_hem=float(rng.uniform(-0.16, -0.11) if top == "jacket" else rng.uniform(-0.07, 0.0)),
            bottom=bottom,
            bottom_thickness=float(rng.uniform(0.012, 0.026)),
            skirt_length=float(rng.uniform(0.3, 0.55)),
            skirt_flare=float(rng.uniform(0.05, 0.12)),
            hair=str(rng.choice(["short", "long", "bun", "buzz"], p=[0.4, 0.3, 0.15, 0.15])),
            hair_volume=float(rng.uniform(0.012, 0.03)),
            boots=bool(rng.random() < 0.3),
        )


def skin_primitives(skel: RestSkeleton, shape: Shape) -> list[Prim]:
    """The naked body as capsules/ellipsoids attached to the skeleton's bones."""
    jt, lm = skel.joints, skel.landmarks
    s = shape.height / 1.72
    b = shape.build * s
    z = np.array([0.0, 0.0, 1.0])
    y = np.array([0.0, 1.0, 0.0])
    waist = 1.0 - 0.1 * shape.curves
    hips = shape.hips * (0.94 + 0.12 * shape.curves)
    # trunk: a chain of elliptic capsules through knots at the spine joints, radii and depth continuous across
    # the junctions (gaps or mismatched ends would leave creases); flattened caps close it at the crotch/shoulders
    ys = [-0.085 * s, 0.03 * s, jt[J["spine1"], 1], jt[J["spine2"], 1], jt[J["spine3"], 1],
          jt[J["spine3"], 1] + 0.105 * s]
    zs = [-0.01 * s, -0.012 * s, jt[J["spine1"], 2], jt[J["spine2"], 2], jt[J["spine3"], 2], -0.012 * s]
    ws = np.array([0.148 * hips, 0.156 * hips, 0.134 * waist, 0.146, 0.156, 0.13 * shape.shoulders]) * b
    ds = np.array([0.70, 0.68, 0.64, 0.66 * (1 + 0.06 * shape.curves), 0.68, 0.6]) * shape.depth
    owners = [J["pelvis"], J["pelvis"], J["spine1"], J["spine2"], J["spine3"]]
    names = ["pelvis", "hips", "abdomen", "chest", "upper_chest"]
    P = []
    for i in range(5):
        P.append(Prim(np.array([0.0, ys[i], zs[i]]), np.array([0.0, ys[i + 1], zs[i + 1]]), ws[i], ws[i + 1],
                      owners[i], names[i], z, ds[i], flat_b=ds[i + 1], cap_a=2.2 if i == 0 else 1.0,
                      cap_b=3.0 if i == 4 else 1.0))
    P += [
        Prim(lm["neck_base"], jt[J["neck"]], 0.058 * b, 0.052 * b, J["spine3"], "neck_low"),
        Prim(jt[J["neck"]], jt[J["head"]], 0.052 * b, 0.05 * b, J["neck"], "neck"),
        Prim(lm["head_centre"], lm["head_centre"], 0, 0, J["head"], "head", radii=lm["head_radius"]),
        Prim(lm["head_centre"] + np.array([0, -0.062, 0.03]) * s * shape.head,
             lm["head_centre"] + np.array([0, -0.03, 0.0]) * s * shape.head, 0.04 * s, 0.05 * s, J["head"], "jaw"),
        Prim(lm["head_centre"] + np.array([0, 0.0, 0.085]) * s * shape.head,
             lm["head_centre"] + np.array([0, -0.025, 0.1]) * s * shape.head, 0.012 * s, 0.016 * s, J["head"],
             "nose"),
    ]
    for side in ("left", "right"):
        def j(n, side=side):
            return jt[J[f"{side}_{n}"]]
        P += [
            Prim(lm["neck_base"] + np.array([0, 0.02 * s, -0.01 * s]), j("collar"), 0.07 * b, 0.066 * b, J["spine3"],
                 f"{side}_trapezius"),
            Prim(j("collar"), j("shoulder"), 0.064 * b, 0.056 * b, J[f"{side}_collar"], f"{side}_collar"),
            Prim(j("shoulder"), j("elbow"), 0.055 * b, 0.041 * b, J[f"{side}_shoulder"], f"{side}_upper_arm"),
            Prim(j("elbow"), j("wrist"), 0.04 * b, 0.03 * b, J[f"{side}_elbow"], f"{side}_forearm"),
            Prim(j("wrist"), lm[f"{side}_hand_end"], 0.036 * b, 0.03 * b, J[f"{side}_wrist"], f"{side}_hand", y, 0.5),
            Prim(j("hip"), j("knee"), 0.088 * b * (0.95 + 0.1 * shape.curves), 0.056 * b, J[f"{side}_hip"],
                 f"{side}_thigh"),
            Prim(j("knee"), j("ankle"), 0.054 * b, 0.036 * b, J[f"{side}_knee"], f"{side}_calf"),
            Prim(lm[f"{side}_heel"], lm[f"{side}_ball"], 0.034 * s, 0.036 * s, J[f"{side}_ankle"], f"{side}_foot",
                 y, 0.75),
            Prim(lm[f"{side}_ball"], lm[f"{side}_toe"], 0.035 * s, 0.026 * s, J[f"{side}_foot"], f"{side}_toes", y,
                 0.7),
            Prim(j("ankle"), lm[f"{side}_heel"] + np.array([0, 0.01, 0.02]) * s, 0.036 * s, 0.034 * s,
                 J[f"{side}_ankle"], f"{side}_ankle"),
        ]
    return P


def garment_layers(skel: RestSkeleton, shape: Shape, outfit: Outfit, skin: list[Prim]) -> dict[int, list[Prim]]:
    """Hair, top, bottom and shoe volumes built from the skin primitives."""
    by = {p.part: p for p in skin}
    s = shape.height / 1.72
    up = np.array([0.0, 1.0, 0.0])
    layers: dict[int, list[Prim]] = {}

    # top: trunk pieces above the hem, plus sleeves
    th = outfit.top_thickness
    hem = ((-up, float(-outfit.top_hem)),)  # keep y >= hem
    top = [by[n].inflated(th, hem) for n in ("pelvis", "hips", "abdomen")]
    top += [by["chest"].inflated(th), by["upper_chest"].inflated(th)]
    if outfit.top == "jacket":  # flared hem: the hip piece widens downwards
        hp = by["hips"]
        top.append(replace(hp, a=hp.b, b=hp.a + np.array([0, -0.06 * s, 0]), ra=hp.rb + th, rb=hp.ra + 1.8 * th,
                           flat=hp.flat_b, flat_b=hp.flat, cap_a=1.0, cap_b=3.0, planes=hem))
    for side in ("left", "right"):
        top.append(by[f"{side}_trapezius"].inflated(th * 0.8))
        if outfit.top == "tank":
            continue
        top.append(by[f"{side}_collar"].inflated(th))
        ua, fa = by[f"{side}_upper_arm"], by[f"{side}_forearm"]
        if outfit.top == "tshirt":
            top.append(ua.inflated(th, ua.cut_along(0.5)))
        else:
            top.append(ua.inflated(th))
            top.append(fa.inflated(th * 0.9, fa.cut_along(0.93)))
    layers[TOP] = top

    # bottom: hips below the waistband, legs down to the cuff, or a skirt
    th = outfit.bottom_thickness
    waist = ((up, 0.09 * s),)  # keep y <= waist
    bottom = [by["pelvis"].inflated(th, waist), by["hips"].inflated(th, waist)]
    for side in ("left", "right"):
        thigh, calf = by[f"{side}_thigh"], by[f"{side}_calf"]
        if outfit.bottom == "trousers":
            bottom += [thigh.inflated(th), calf.inflated(th * 0.8, calf.cut_along(0.9))]
        elif outfit.bottom == "shorts":
            bottom += [thigh.inflated(th, thigh.cut_along(0.55))]
        else:
            bottom += [thigh.inflated(0.006, thigh.cut_along(0.3))]
    if outfit.bottom == "skirt":
        knee_y = skel.joints[J["left_knee"], 1]
        hip_y = skel.joints[J["left_hip"], 1]
        hem_y = hip_y + (skel.floor_y - hip_y) * outfit.skirt_length
        r_top = by["hips"].ra + th
        top_pt = np.array([0.0, 0.07 * s, -0.01 * s])
        bot_pt = np.array([0.0, hem_y, -0.01 * s])
        spread = abs(skel.joints[J["left_knee"], 0]) + 0.06 * s
        r_bot = max(spread + outfit.skirt_flare * (hip_y - hem_y) / max(hip_y - knee_y, 1e-3), r_top)
        bottom.append(Prim(top_pt, bot_pt, r_top, r_bot, J["pelvis"], "skirt", np.array([0.0, 0.0, 1.0]), 0.72,
                           cap_a=8.0, cap_b=8.0, planes=((-up, float(-hem_y)),)))
    layers[BOTTOM] = bottom

    # shoes
    shoes = []
    for side in ("left", "right"):
        floor = ((-up, float(-(skel.floor_y - 0.012 * s))),)  # sole a little below the floor line
        shoes += [by[f"{side}_foot"].inflated(0.013 * s, floor), by[f"{side}_toes"].inflated(0.012 * s, floor),
                  by[f"{side}_ankle"].inflated(0.012 * s, floor)]
        if outfit.boots:
            calf = by[f"{side}_calf"]
            shoes.append(calf.inflated(0.016 * s, calf.cut_along(0.7, keep="above")))
    layers[SHOES] = shoes

    # hair: a cap over the skull that leaves the face free, plus a style-specific volume
    head = by["head"]
    c, r = head.a, head.radii
    hv = 0.006 if outfit.hair == "buzz" else outfit.hair_volume
    front = np.array([0.0, c[1] + 0.42 * r[1], c[2] + r[2]])
    back = np.array([0.0, c[1] - 0.62 * r[1], c[2] - r[2]])
    tang = (front - back) / np.linalg.norm(front - back)
    n = np.cross(tang, np.array([1.0, 0.0, 0.0]))  # plane normal in the y-z plane
    n = -n if n[1] > 0 else n  # keep the side above the hairline: n points down/forward
    hair = [head.inflated(hv, ((n, float(n @ back)),))]
    if outfit.hair == "long":
        a = c + np.array([0.0, 0.02, -0.45 * r[2]])
        b = c + np.array([0.0, -0.3 * s, -0.9 * r[2] - 0.03 * s])
        hair.append(Prim(a, b, 0.085 * s, 0.1 * s, J["head"], "long_hair", np.array([0.0, 0.0, 1.0]), 0.42,
                         cap_b=3.0, planes=((np.array([0.0, 0.0, 1.0]), float(c[2] - 0.25 * r[2])),)))
    elif outfit.hair == "bun":
        hair.append(Prim(c + np.array([0, 0.55 * r[1], -0.75 * r[2]]), c + np.array([0, 0.6 * r[1], -0.85 * r[2]]),
                         0.045 * s, 0.045 * s, J["head"], "bun"))
    layers[HAIR] = hair
    return layers


# --- grid evaluation and meshing ----------------------------------------------------------------------------
@dataclass
class Grid:
    origin: np.ndarray  # (3,) model-space position of voxel (0,0,0)
    h: float  # voxel size, metres
    shape: tuple  # (nx, ny, nz)


def _grid_for(prims: list[Prim], h: float, pad: float = 0.05) -> Grid:
    lo = np.min([p.bounds()[0] for p in prims], axis=0) - pad
    hi = np.max([p.bounds()[1] for p in prims], axis=0) + pad
    n = np.ceil((hi - lo) / h).astype(int) + 1
    return Grid(lo, h, tuple(int(v) for v in n))


def _layer_field(prims: list[Prim], grid: Grid, k: float, far: float = 1.0) -> np.ndarray:
    """Smooth union of ``prims`` sampled on ``grid`` (nx,ny,nz); each piece is evaluated only near itself."""
    D = np.full(grid.shape, far, dtype=np.float64)
    margin = k + 3 * grid.h
    for p in prims:
        lo, hi = p.bounds()
        i0 = np.clip(np.floor((lo - margin - grid.origin) / grid.h).astype(int), 0, None)
        i1 = np.minimum(np.ceil((hi + margin - grid.origin) / grid.h).astype(int) + 1, grid.shape)
        if np.any(i1 <= i0):
            continue
        axes = [grid.origin[d] + grid.h * np.arange(i0[d], i1[d]) for d in range(3)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        d = p.sdf(pts).reshape(tuple(i1 - i0))
        sl = tuple(slice(i0[a], i1[a]) for a in range(3))
        D[sl] = smin(D[sl], d, k)
    return D


def layer_sdf(prims: list[Prim], pts: np.ndarray, k: float, far: float = 1.0) -> np.ndarray:
    """The same smooth union at arbitrary points (N,3) -> (N,)."""
    D = np.full(len(pts), far)
    for p in prims:
        D = smin(D, p.sdf(pts), k)
    return D


def _mesh_field(D: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Zero level set of D as a closed, outward-oriented triangle mesh; tiny loose pieces are dropped."""
    verts, faces, _, _ = marching_cubes(D, level=0.0, spacing=(grid.h,) * 3, allow_degenerate=False)
    verts = verts + grid.origin
    faces = faces.astype(np.int64)
    # orientation: the signed volume of a closed outward mesh is positive
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    if np.einsum("ij,ij->i", v0, np.cross(v1, v2)).sum() < 0:
        faces = faces[:, [0, 2, 1]]
    return _drop_small_components(verts, faces)


def _drop_small_components(verts: np.ndarray, faces: np.ndarray, min_frac: float = 0.01):
    """Keep connected pieces with at least ``min_frac`` of the faces (marching cubes can leave specks)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(verts)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    fcomp = comp[faces[:, 0]]
    counts = np.bincount(fcomp)
    keep_face = counts[fcomp] >= min_frac * len(faces)
    faces = faces[keep_face]
    used = np.zeros(n, dtype=bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    return verts[used], remap[faces]


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V,3)."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def skin_weights(points: np.ndarray, skin: list[Prim], tau: float = 0.012, spread: float = 0.6) -> np.ndarray:
    """(N,22) skinning weights: a soft-min over the distances to each bone's skin pieces.

    The softness grows with the distance from the skin (``spread``), so loose cloth (a skirt hem) averages the
    bones around it instead of snapping to the nearest leg.
    """
    d = np.stack([p.sdf(points) for p in skin], axis=1)  # (N,P)
    dmin = d.min(1, keepdims=True)
    t = tau + spread * np.maximum(dmin, 0.0)
    w_p = np.exp(-(d - dmin) / t)
    W = np.zeros((len(points), NUM_JOINTS))
    owners = np.array([p.owner for p in skin])
    for j in range(NUM_JOINTS):
        sel = owners == j
        if sel.any():
            W[:, j] = w_p[:, sel].sum(1)
    W[W < 1e-4 * W.sum(1, keepdims=True)] = 0.0
    return W / W.sum(1, keepdims=True)


@dataclass
class SurfaceMesh:
    """A rest-pose skinned mesh (model space, true size)."""

    vertices: np.ndarray  # (V,3)
    faces: np.ndarray  # (F,3) int64, outward winding
    weights: np.ndarray  # (V,22)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))  # (V,) surface labels


@dataclass
class SubjectSurfaces:
    body: SurfaceMesh  # naked
    clothed: SurfaceMesh  # rendered
    skin: list  # skin primitives (for weights and tests)


def build_surfaces(skel: RestSkeleton, shape: Shape, outfit: Outfit, voxel: float = 0.016,
                   body_voxel: float = 0.017, blend: float = 0.03) -> SubjectSurfaces:
    """Mesh the naked and the clothed rest-pose surfaces of one subject."""
    skin = skin_primitives(skel, shape)
    layers = garment_layers(skel, shape, outfit, skin)

    grid = _grid_for(skin, body_voxel)
    D_skin = _layer_field(skin, grid, blend)
    bv, bf = _mesh_field(D_skin, grid)
    body = SurfaceMesh(bv, bf, skin_weights(bv, skin), np.full(len(bv), SKIN, dtype=np.int8))

    all_prims = skin + [p for ps in layers.values() for p in ps]
    grid = _grid_for(all_prims, voxel)
    D = _layer_field(skin, grid, blend)
    for ps in layers.values():
        D = np.minimum(D, _layer_field(ps, grid, blend * 0.5))
    cv, cf = _mesh_field(D, grid)
    # label = the layer whose surface passes closest to the vertex (skin loses ties so garments keep their edges)
    dl = [np.abs(layer_sdf(skin, cv, blend)) + 0.002]
    names = [SKIN]
    for lab, ps in layers.items():
        dl.append(np.abs(layer_sdf(ps, cv, blend * 0.5)))
        names.append(lab)
    labels = np.array(names, dtype=np.int8)[np.argmin(np.stack(dl, 1), axis=1)]
    clothed = SurfaceMesh(cv, cf, skin_weights(cv, skin), labels)
    return SubjectSurfaces(body=body, clothed=clothed, skin=skin)
