"""Spec of GNR (data only; importing it loads no torch)."""

from bench.gnr.presets import DEFAULT_PRESET, PRESETS

SPEC = {
    "id": "gnr",
    "method_class": "bench.methods.gnr:GNRMethod",
    "kind": "generalizable",
    "inputs": ["source-views", "masks", "body-mesh", "body-params", "canonical-mesh"],
    "inputs_from_config": {"canonical-mesh": "canonical_mesh"},
    "accepts_device": True,
    "description": "Generalizable Neural Performer: stacked-hourglass features of 4 source views, an implicit "
                   "geometric embedding of the fitted SMPL-X body, a multi-view NeRF and screen-space "
                   "occlusion-aware appearance blending of the source pixels. Re-implemented in bench.gnr; loads "
                   "official checkpoints (presets official-*).",
    "paper": {
        "title": "Generalizable Neural Performer: Learning Robust Radiance Fields for Human Novel View Synthesis",
        "authors": "Wei Cheng, Su Xu, Jingtan Piao, Chen Qian, Wayne Wu, Kwan-Yee Lin, Hongsheng Li",
        "venue": "arXiv 2022",
        "arxiv": "2204.11798",
        "code": "https://github.com/generalizable-neural-performer/gnr",
    },
    # GNR's own GeneBody score is not in the official README (shared/research/gnr.md section 1). The entry below
    # is NOT an official summary: it is our mean over the 10 Test10 per-subject numbers that openxrlab/xrnerf's
    # docs/en/benchmark.md lists for the official GNR code (PSNR/SSIM only, no LPIPS).
    "paper_results": {
        "genebody/genebody-gnr": {
            "psnr": 25.67, "ssim": 0.921,
            "source": "mean of xrnerf docs/en/benchmark.md per-subject 'GNR' column (Test10), computed by us; "
                      "not a published summary number",
        },
    },
    "presets": {name: dict(values) for name, values in PRESETS.items()},
    "default_preset": DEFAULT_PRESET,
    "install": "pip install warp-lang  (bench.gnr's body embedding uses NVIDIA warp)",
    "distributed": True,  # data-parallel training: the harness samples per rank and averages gradients
}
