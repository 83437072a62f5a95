"""Spec of the mesh-blend baseline (data only)."""

SPEC = {
    "id": "mesh-blend",
    "method_class": "bench.methods.mesh_blend:MeshBlend",
    "kind": "non-learned",
    "inputs": ["source-views", "masks", "body-mesh"],
    "accepts_device": True,
    "description": "Rasterizes the fitted body mesh into the target view and colours each surface point from "
                   "the source views that see it (visibility from each source's own body depth map), blended "
                   "by view-angle weights. No learning: shows what the body prior alone buys.",
    "paper": {},
}
