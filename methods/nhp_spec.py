"""Spec of the Neural Human Performer baseline (data only; importing this imports nothing heavy)."""

_SMOKE = {
    # tiny: ResNet-18 stem + layer1 (128-d), 16-d vertex features, narrow volume and MLP, coarse 2 cm voxels,
    # few samples and rays, encoder at half resolution, no colour jitter; 100 steps in a few minutes on 2 cores
    "num_layers": 2, "embed_size": 16, "volume_channels": [16, 16, 16, 32, 32], "voxel_size": 0.02,
    "width": 32, "attn_dim": 16, "rgb_width": 16, "n_coarse": 16, "n_fine": 16, "n_rays": 128,
    "image_scale": 0.5, "time_steps": 1, "bn_momentum": 0.1, "color_jitter": False, "lr": 1e-3,
    "render_chunk": 2048, "num_iterations": 100,
}

SPEC = {
    "id": "nhp",
    "method_class": "bench.methods.nhp:NHP",
    "kind": "generalizable",
    "inputs": ["source-views", "masks", "body-mesh", "body-params"],
    "accepts_device": True,
    "description": "Neural Human Performer: ResNet-18 features of the source views painted onto the visible body "
                   "vertices, (optionally) fused over neighbouring frames, diffused by a sparse 3D conv net into a "
                   "skeletal feature volume; per query point the volume feature attends over the views' "
                   "pixel-aligned features (multi-view cross-attention) before a NeRF head; 64 coarse + 128 fine "
                   "samples in the body box. Temporal fusion runs only when requests carry neighbour frames.",
    "paper": {
        "title": "Neural Human Performer: Learning Generalizable Radiance Fields for Human Performance Rendering",
        "authors": ["Youngjoong Kwon", "Dahun Kim", "Duygu Ceylan", "Henry Fuchs"],
        "venue": "NeurIPS 2021",
        "arxiv": "2109.07448",
        "code": "https://github.com/YoungJoongUNC/Neural_Human_Performer",
    },
    "paper_results": {
        "zjumocap/zjumocap-nhp": {"psnr": 24.75,
                                  "source": "NHP paper, ZJU-MoCap unseen identities (387, 393, 394), 3 source views "
                                            "[0, 7, 15], box-masked PSNR (papers-with-code listing); SSIM ~0.906 "
                                            "unverified, not listed"},
    },
    "presets": {
        "paper": {},
        "cpu-smoke": _SMOKE,
        "cpu-demo": {
            **_SMOKE, "num_layers": 3, "embed_size": 32, "volume_channels": [32, 32, 32, 64, 64], "voxel_size": 0.01,
            "width": 128, "attn_dim": 64, "rgb_width": 64, "n_coarse": 48, "n_fine": 48, "n_rays": 512,
            "image_scale": 1.0, "lr": 5e-4, "num_iterations": 3000,
        },
    },
    "default_preset": "paper",
    "distributed": True,  # data-parallel training: the harness samples per rank and averages gradients
}
