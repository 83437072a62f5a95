"""One synthetic person: shape, outfit, looks, motion and meshes, all drawn from one seed; plus its "fitted" body.

Sizes: the surfaces are built at true size; SMPL-X model space divides them by the subject's ``smplx_scale``
(as GeneBody's fits do, the written ``smpl/`` meshes are ``scale * model output``, so they come out true size).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body_model import Outfit, SubjectSurfaces, build_surfaces
from .motion import Motion, pose_at
from .skeleton import NUM_JOINTS, J, Pose, RestSkeleton, Shape, extra_keypoints, pose_joints, pose_points, \
    rest_skeleton, rigid_points
from .texture import Appearance, FaceLayout


@dataclass
class Person:
    name: str
    shape: Shape
    outfit: Outfit
    appearance: Appearance
    motion: Motion
    scale: float  # smplx_scale
    skel: RestSkeleton  # model space (true size / scale)
    surfaces: SubjectSurfaces  # true size
    layout: FaceLayout  # true size
    extra_rest: np.ndarray  # (33,3) model-space rest keypoints 22..54
    extra_owner: np.ndarray  # (33,)

    # --- model-space rest meshes ---------------------------------------------------------------------------
    @property
    def body_rest(self) -> np.ndarray:
        return self.surfaces.body.vertices / self.scale

    @property
    def clothed_rest(self) -> np.ndarray:
        return self.surfaces.clothed.vertices / self.scale

    def pose(self, t: float) -> Pose:
        """True pose at time ``t`` seconds."""
        return pose_at(self.motion, self.skel, self.scale, t)

    def clothed_world(self, pose: Pose) -> np.ndarray:
        return pose_points(self.clothed_rest, self.surfaces.clothed.weights, self.skel.joints, pose)

    def body_world(self, pose: Pose) -> np.ndarray:
        return pose_points(self.body_rest, self.surfaces.body.weights, self.skel.joints, pose)

    def keypoints(self, pose: Pose) -> np.ndarray:
        """(55,3) SMPL-X keypoints in world coordinates: the 22 joints, jaw, eyes, 30 finger joints."""
        return np.concatenate([pose_joints(self.skel.joints, pose),
                               rigid_points(self.extra_rest, self.extra_owner, self.skel.joints, pose)])

    def smplx_params(self, pose: Pose) -> dict[str, np.ndarray]:
        """The SMPL-X parameter dict GeneBody stores in ``param/FFFF.npy['smplx']``."""
        return {
            "global_orient": pose.global_orient.reshape(1, 3),
            "transl": pose.transl.reshape(1, 3),
            "body_pose": pose.body_pose.reshape(1, 21, 3),
            "betas": self.shape.betas().reshape(1, 10),
            "jaw_pose": np.zeros((1, 3)),
            "leye_pose": np.zeros((1, 3)),
            "reye_pose": np.zeros((1, 3)),
            "left_hand_pose": np.zeros((15, 3)),
            "right_hand_pose": np.zeros((15, 3)),
            "expression": np.zeros((1, 10)),
            "keypoints3d": self.keypoints(pose).reshape(1, 55, 3),
        }


def make_person(name: str, seed: np.random.SeedSequence, voxel: float = 0.016) -> Person:
    """Draw a person from ``seed``; each aspect has its own stream, so changing one never reshuffles the others."""
    r_shape, r_outfit, r_look, r_motion, r_scale = (np.random.default_rng(s) for s in seed.spawn(5))
    shape = Shape.sample(r_shape)
    outfit = Outfit.sample(r_outfit)
    appearance = Appearance.sample(r_look)
    motion = Motion.sample(r_motion)
    scale = float(r_scale.uniform(0.97, 1.06))
    skel_true = rest_skeleton(shape)
    surfaces = build_surfaces(skel_true, shape, outfit, voxel=voxel, body_voxel=voxel * 1.06)
    lm = skel_true.landmarks
    hc, hr = lm["head_centre"], lm["head_radius"]
    extra, owners = extra_keypoints(skel_true)
    chest_y = skel_true.joints[J["spine3"], 1] - 0.01
    front = surfaces.clothed.vertices
    near = np.abs(front[:, 1] - chest_y) < 0.02
    chest_z = float(front[near & (np.abs(front[:, 0]) < 0.05), 2].max()) if np.any(near) else 0.12
    layout = FaceLayout(eyes=extra[1:3], mouth=hc + np.array([0.0, -0.5 * hr[1], 0.93 * hr[2]]),
                        head_centre=hc, chest=np.array([0.0, chest_y, chest_z]), jacket=outfit.top == "jacket",
                        floor_y=skel_true.floor_y)
    skel_model = RestSkeleton(joints=skel_true.joints / scale,
                              landmarks={k: v / scale for k, v in skel_true.landmarks.items()},
                              floor_y=skel_true.floor_y / scale)
    return Person(name=name, shape=shape, outfit=outfit, appearance=appearance, motion=motion, scale=scale,
                  skel=skel_model, surfaces=surfaces, layout=layout, extra_rest=extra / scale, extra_owner=owners)


# --- the imperfect "fit" handed to methods ---------------------------------------------------------------------
def perturb_pose(pose: Pose, direction: dict, amount: float) -> Pose:
    """``pose`` moved ``amount`` times along a unit noise ``direction`` (pose, orientation, translation, scale)."""
    from .skeleton import axis_angle_to_matrix, matrix_to_axis_angle

    out = pose.copy()
    out.body_pose = pose.body_pose + amount * direction["body_pose"]
    Rg = axis_angle_to_matrix(pose.global_orient) @ axis_angle_to_matrix(amount * direction["global_orient"])
    out.global_orient = matrix_to_axis_angle(Rg)
    out.scale = float(pose.scale * np.exp(amount * direction["log_scale"]))
    # translation noise is in world metres; keep the pelvis where the (rescaled) fit puts it
    out.transl = (pose.scale * pose.transl + amount * direction["transl"]) / out.scale
    return out


def fit_direction(rng: np.random.Generator) -> dict:
    """Random fitting-error direction: a few degrees per joint, under a degree at the root, ~cm and ~1% scale."""
    return {
        "body_pose": rng.normal(0.0, np.radians(1.0), size=(NUM_JOINTS - 1, 3)),
        "global_orient": rng.normal(0.0, np.radians(0.4), size=3),
        "transl": rng.normal(0.0, 0.005, size=3),
        "log_scale": float(rng.normal(0.0, 0.004)),
    }


def fitted_pose(person: Person, true_pose: Pose, rng: np.random.Generator, target_rms: float) -> Pose:
    """A pose whose body mesh deviates from the true body by ``target_rms`` metres RMS over vertices."""
    if target_rms <= 0:
        return true_pose.copy()
    direction = fit_direction(rng)
    truth = person.body_world(true_pose)

    def rms(amount):
        return float(np.sqrt(((person.body_world(perturb_pose(true_pose, direction, amount)) - truth) ** 2)
                             .sum(1).mean()))

    amount = 1.0
    for _ in range(4):  # secant-like rescaling; the error is nearly linear in the amount for small errors
        e = rms(amount)
        if e <= 0:
            break
        amount *= target_rms / e
    return perturb_pose(true_pose, direction, amount)


__all__ = ["Person", "make_person", "fitted_pose", "perturb_pose"]
