"""Spec of the mesh-blend baseline (data only)."""

SPEC = {
    "id": "mesh-blend",
    "method_class": "bench.methods.mesh_blend:MeshBlend",
    "kind": "non-learned",
    "inputs": ["source-views", "masks", "body-mesh"],
    "description": "Rasterizes the fitted body mesh into the target view and colours each surface point from "
                   "the source views that see it (visibility from each source's own body depth map), blended "
                   "by view-angle weights. No learning: shows what the body prior alone buys.",
    "paper": {},
    "presets": {"default": {"depth_tolerance": 0.03, "angle_sharpness": 8.0}},
    "default_preset": "default",
}
