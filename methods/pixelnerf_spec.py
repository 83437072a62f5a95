"""Spec of the pixelNeRF baseline (data only; importing this imports nothing heavy)."""

_SMOKE = {
    # tiny: ResNet-18 stem + layer1 (128-d features), narrow MLP, few samples and rays; ~1 s/step on 2 cores
    "backbone": "resnet18", "num_layers": 2, "d_hidden": 64, "n_blocks": 3, "combine_layer": 2,
    "n_coarse": 16, "n_fine": 8, "n_fine_depth": 4, "targets_per_step": 1, "rays_per_target": 128,
    "lr": 1e-3, "bounds": "box", "render_chunk": 2048, "num_iterations": 100,
}

SPEC = {
    "id": "pixelnerf",
    "method_class": "bench.methods.pixelnerf:PixelNeRF",
    "kind": "generalizable",
    "inputs": ["source-views", "masks", "body-mesh"],
    "accepts_device": True,
    "description": "NeRF conditioned on pixel-aligned ResNet-34 features of the source views (per-view point "
                   "encoding, mean pooling across views inside a ResNet-FC MLP), coarse + fine sampling. The body "
                   "mesh only sets each ray's near/far.",
    "paper": {
        "title": "pixelNeRF: Neural Radiance Fields from One or Few Images",
        "authors": ["Alex Yu", "Vickie Ye", "Matthew Tancik", "Angjoo Kanazawa"],
        "venue": "CVPR 2021",
        "arxiv": "2012.02190",
        "code": "https://github.com/sxyu/pixel-nerf",
    },
    "paper_results": {
        "genebody/genebody-gnr": {"psnr": 24.15, "ssim": 0.903, "lpips_alex": 0.122,
                                  "source": "GNR README / genebody-benchmarks (GNR team's own implementation)"},
    },
    "presets": {
        "paper": {},
        "cpu-smoke": _SMOKE,
        "cpu-demo": {
            "backbone": "resnet34", "num_layers": 3, "d_hidden": 128, "n_blocks": 4, "combine_layer": 2,
            "n_coarse": 32, "n_fine": 16, "n_fine_depth": 8, "targets_per_step": 2, "rays_per_target": 256,
            "lr": 5e-4, "bounds": "box", "render_chunk": 2048, "num_iterations": 2000,
        },
    },
    "default_preset": "paper",
    "distributed": True,  # data-parallel training: the harness samples per rank and averages gradients
}
