"""Spec of the nearest-view floor (data only)."""

SPEC = {
    "id": "nearest-view",
    "method_class": "bench.methods.nearest_view:NearestView",
    "kind": "non-learned",
    "inputs": ["source-views"],
    "description": "Returns the source view whose viewing direction is closest to the target's, unchanged. "
                   "A floor: any method worth running must beat it.",
    "paper": {},
    "presets": {},
}
