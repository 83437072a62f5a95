"""Spec of the IBRNet baseline (data only; importing this imports nothing heavy)."""

SPEC = {
    "id": "ibrnet",
    "method_class": "bench.methods.ibrnet:IBRNet",
    "kind": "generalizable",
    "inputs": ["source-views", "masks", "body-mesh"],
    "accepts_device": True,
    "description": "Learned image-based rendering: per-sample multi-view aggregation of source colours and U-Net "
                   "features (mean/variance pooling) blends the source colours; a ray transformer gives density; "
                   "coarse + fine sampling. Settings of the genebody-benchmarks ibrnet branch; the body mesh only "
                   "sets each camera's near/far.",
    "paper": {
        "title": "IBRNet: Learning Multi-View Image-Based Rendering",
        "authors": ["Qianqian Wang", "Zhicheng Wang", "Kyle Genova", "Pratul Srinivasan", "Howard Zhou",
                    "Jonathan T. Barron", "Ricardo Martin-Brualla", "Noah Snavely", "Thomas Funkhouser"],
        "venue": "CVPR 2021",
        "arxiv": "2102.13090",
        "code": "https://github.com/googleinterns/IBRNet",
        "genebody_code": "https://github.com/generalizable-neural-performer/genebody-benchmarks/tree/ibrnet",
    },
    "paper_results": {
        "genebody/genebody-gnr": {"psnr": 23.61, "ssim": 0.836, "lpips_alex": 0.177,
                                  "source": "GNR README / genebody-benchmarks"},
    },
    "presets": {
        "paper": {},
        "cpu-smoke": {
            # tiny: narrow 1-block-per-stage U-Net, 8-d features, 16+16 samples, 256 rays; ~1 s/step on 2 cores
            "feature_width": 16, "feature_blocks": [1, 1, 1], "coarse_feat_dim": 8, "fine_feat_dim": 8,
            "n_samples": 16, "n_importance": 16, "rays_per_step": 256, "lr_mlp": 1e-3, "lr_feature": 1e-3,
            "bounds": "box", "ray_region": "mask-bbox", "render_chunk": 1024, "num_iterations": 100,
        },
        "cpu-demo": {
            "feature_width": 32, "feature_blocks": [2, 2, 2], "coarse_feat_dim": 16, "fine_feat_dim": 16,
            "n_samples": 32, "n_importance": 32, "rays_per_step": 500, "lr_mlp": 5e-4, "lr_feature": 1e-3,
            "bounds": "box", "ray_region": "mask-bbox", "render_chunk": 1024, "num_iterations": 2000,
            "lr_decay_steps": 1000,
        },
    },
    "default_preset": "paper",
    "distributed": True,  # data-parallel training: the harness samples per rank and averages gradients
}
