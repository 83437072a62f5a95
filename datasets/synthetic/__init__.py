"""Synthetic GeneBody-format data: procedural, articulated, textured people seen by a GeneBody-like camera ring.

``generate_genebody(out_dir, ...)`` writes the real GeneBody layout (readable by
:class:`bench.datasets.genebody.GeneBodyReader`), so tests and the README's main job run with no download.
"""
from .generate import generate_genebody

__all__ = ["generate_genebody"]
