"""Dataset registry: name -> reader, where to look for the data, default protocol, how to get it."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from .errors import DatasetError

DATASETS: dict[str, dict] = {
    "genebody": {
        "reader": "bench.datasets.genebody:GeneBodyReader",
        "env": "GENEBODY_ROOT",
        "default_protocol": "genebody-gnr",
        "rig_views": [f"{i:02d}" for i in range(48)],  # the capture dome's 48 cameras
        # GNR's render mode (gnr.md section 5): orbit radius, the views giving its height and pitch, and the
        # camera whose intrinsics it uses (free-viewpoint rendering of other datasets derives all three)
        "orbit": {"radius": 2.9, "views": [f"{i:02d}" for i in range(1, 47, 3)], "intrinsics_view": "25"},
        "how_to_get": (
            "GeneBody (Test10/Train40) is distributed by its authors: see https://generalizable-neural-performer.github.io/genebody.html "
            "(Train40 needs a signed release agreement). Point bench at it with --root DIR or $GENEBODY_ROOT. "
            "To try bench without it: `bench data synth --out data/genebody-synth` writes synthetic people in the "
            "same layout, then pass --root data/genebody-synth."
        ),
    },
    "zjumocap": {
        "reader": "bench.datasets.zjumocap:ZJUMoCapReader",
        "env": "ZJUMOCAP_ROOT",
        "default_protocol": "zjumocap-nhp",
        "how_to_get": (
            "ZJU-MoCap is distributed by Zhejiang University on request: see https://github.com/zju3dv/neuralbody "
            "(INSTALL.md, 'ZJU-Mocap dataset', agreement form). Point bench at the folder holding CoreView_313 ... "
            "CoreView_396 with --root DIR or $ZJUMOCAP_ROOT; add smpl_faces.npy (SMPL's face array) there for "
            "body-mesh methods. To try bench without it: `bench data synth --layout zjumocap --out "
            "data/zjumocap-synth` writes synthetic people in the same layout."
        ),
    },
    "vsense": {
        "reader": "bench.datasets.vsense:VSenseReader",
        "env": "VSENSE_ROOT",
        "default_protocol": "vsense-bench",
        "how_to_get": (
            "The V-sense renders used by the GNR benchmarks (RENDER/MASK/PARAM/SMPL/SMPL_PARAM per subject) come from "
            "the GNR authors' re-rendering of the V-SENSE volumetric video database "
            "(https://v-sense.scss.tcd.ie/news/v-sense-volumetric-video-quality-database/); there is no public "
            "download of the renders. Point bench at the folder of subjects with --root DIR or $VSENSE_ROOT. "
            "To try bench without it: `bench data synth --layout vsense --out data/vsense-synth`."
        ),
    },
}


class UnknownDatasetError(KeyError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")

    def __str__(self):
        return self.args[0]


def dataset_spec(name: str) -> dict:
    if name not in DATASETS:
        raise UnknownDatasetError(name)
    return DATASETS[name]


def resolve_root(name: str, root: str | os.PathLike | None) -> Path:
    """The dataset root from ``--root`` or the dataset's environment variable, with a helpful error."""
    spec = dataset_spec(name)
    looked = []
    if root is not None:
        looked.append(f"--root {root}")
        candidate = Path(root)
    elif os.environ.get(spec["env"]):
        looked.append(f"${spec['env']}={os.environ[spec['env']]}")
        candidate = Path(os.environ[spec["env"]])
    else:
        looked.append(f"--root (not given) and ${spec['env']} (not set)")
        candidate = None
    if candidate is None or not candidate.is_dir():
        raise DatasetError(candidate or Path(f"${spec['env']}"), None,
                           f"no {name} data found; looked at {'; '.join(looked)}. {spec['how_to_get']}")
    return candidate.resolve()


def open_dataset(name: str, root: str | os.PathLike | None = None):
    spec = dataset_spec(name)
    module, _, cls = spec["reader"].partition(":")
    reader_cls = getattr(importlib.import_module(module), cls)
    return reader_cls(resolve_root(name, root))


def detect_dataset(root: str | Path) -> str | None:
    """The layout a root is in: ``bench-info.json``'s ``layout`` (synthetic data), else the files' signatures
    (GeneBody: ``genebody_split.npy`` or subjects with ``image/`` + ``annots.npy``; ZJU-MoCap: subjects with
    ``annots.npy`` and ``Camera*`` folders; V-sense: subjects with ``RENDER/``). None when nothing matches."""
    import json

    root = Path(root)
    info = root / "bench-info.json"
    if info.is_file():
        try:
            layout = json.loads(info.read_text()).get("layout", "genebody")
        except (OSError, ValueError):
            layout = None
        if layout in DATASETS:
            return layout
    if (root / "genebody_split.npy").is_file():
        return "genebody"
    subjects = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    for d in subjects:
        if (d / "RENDER").is_dir():
            return "vsense"
        if (d / "annots.npy").is_file():
            if (d / "image").is_dir():
                return "genebody"
            if any(c.is_dir() and c.name.startswith("Camera") for c in d.iterdir()):
                return "zjumocap"
    return None

