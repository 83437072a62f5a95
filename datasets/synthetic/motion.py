"""Smooth per-subject motions (walking in place, waving, dancing while turning) as SMPL-X body poses.

Angles are built from named anatomical rotations in the rest frame (model axes: +x subject's left, +y up,
+z forward) and stay within ranges that keep limbs clear of the body (arms hang at least ~14 degrees out from the
trunk), so the skinned surfaces barely self-intersect.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .skeleton import NUM_JOINTS, J, Pose, RestSkeleton, axis_angle_to_matrix, matrix_to_axis_angle, \
    rigid_points, world_orient

MOTIONS = ("walk", "wave", "dance")
FLOOR_Y = 0.93  # world y of the floor (GeneBody's world is y-down: feet near +0.9 m, head near -0.7 m)


def _rx(a):
    return axis_angle_to_matrix(np.array([a, 0.0, 0.0]))


def _ry(a):
    return axis_angle_to_matrix(np.array([0.0, a, 0.0]))


def _rz(a):
    return axis_angle_to_matrix(np.array([0.0, 0.0, a]))


@dataclass(frozen=True)
class Motion:
    kind: str = "walk"
    period: float = 1.1  # seconds per cycle
    phase: float = 0.0  # cycle offset in [0, 1)
    amp: float = 1.0  # amplitude multiplier
    arm_out: float = np.radians(18)  # resting abduction of the arms from the trunk
    yaw0: float = 0.0  # initial facing (radians, about the vertical)
    yaw_rate: float = 0.0  # radians / second
    x0: float = 0.0  # world position of the pelvis on the floor plane
    z0: float = 0.0
    wave_left: bool = True

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Motion":
        kind = str(rng.choice(MOTIONS, p=[0.45, 0.3, 0.25]))
        rate = np.radians(rng.uniform(25, 45)) if kind == "dance" else np.radians(rng.uniform(-12, 12))
        return cls(kind=kind, period=float(rng.uniform(0.95, 1.35)), phase=float(rng.random()),
                   amp=float(rng.uniform(0.8, 1.15)), arm_out=float(np.radians(rng.uniform(15, 24))),
                   yaw0=float(rng.uniform(0, 2 * np.pi)), yaw_rate=float(rate * rng.choice([-1, 1])),
                   x0=float(rng.normal(0, 0.05)), z0=float(rng.normal(0, 0.05)), wave_left=bool(rng.random() < 0.5))

    def to_dict(self) -> dict:
        return asdict(self)

    # --- joint angles --------------------------------------------------------------------------------------
    def local_rotations(self, t: float) -> np.ndarray:
        """(22,3,3) local joint rotations at time ``t`` seconds (index 0, the root, is identity here)."""
        R = np.broadcast_to(np.eye(3), (NUM_JOINTS, 3, 3)).copy()
        ph = 2 * np.pi * (t / self.period + self.phase)
        a = self.amp
        down = np.pi / 2 - self.arm_out

        def arm(side, lower, swing, elbow):
            """Arm lowered by ``lower`` from the T-pose, swung forward by ``swing``, elbow bent by ``elbow``."""
            sg = 1.0 if side == "left" else -1.0
            R[J[f"{side}_shoulder"]] = _rx(-swing) @ _rz(-sg * lower)
            R[J[f"{side}_elbow"]] = _ry(-sg * elbow)

        def leg(side, flex, knee, foot_flat=0.7):
            R[J[f"{side}_hip"]] = _rx(-flex)
            R[J[f"{side}_knee"]] = _rx(knee)
            R[J[f"{side}_ankle"]] = _rx(foot_flat * (flex - knee))

        if self.kind == "walk":
            for side, off in (("left", 0.0), ("right", np.pi)):
                s = np.sin(ph + off)
                swing_fwd = max(0.0, np.cos(ph + off))
                leg(side, np.radians(20) * a * s, np.radians(6) + np.radians(36) * a * swing_fwd**2)
                arm(side, down, -np.radians(24) * a * s, np.radians(12) + np.radians(18) * max(0.0, -s))
            R[J["spine2"]] = _ry(np.radians(5) * a * np.sin(ph))
            R[J["spine1"]] = _rx(np.radians(3))
            R[J["head"]] = _ry(np.radians(6) * np.sin(0.5 * ph + 1.0))
        elif self.kind == "wave":
            waver, other = ("left", "right") if self.wave_left else ("right", "left")
            sg = 1.0 if waver == "left" else -1.0
            R[J[f"{waver}_shoulder"]] = _rx(-np.radians(25)) @ _rz(sg * np.radians(20 + 8 * np.sin(0.5 * ph)))
            R[J[f"{waver}_elbow"]] = _rz(sg * np.radians(75 + 28 * a * np.sin(2 * ph)))
            arm(other, down, np.radians(8) * np.sin(ph), np.radians(15))
            shift = np.radians(4) * np.sin(0.5 * ph)
            leg("left", np.radians(3) + shift, np.radians(6))
            leg("right", np.radians(3) - shift, np.radians(6))
            R[J["left_hip"]] = R[J["left_hip"]] @ _rz(np.radians(3))
            R[J["right_hip"]] = R[J["right_hip"]] @ _rz(-np.radians(3))
            R[J["neck"]] = _ry(sg * np.radians(12)) @ _rx(np.radians(4) * np.sin(ph))
        else:  # dance: knee bounce, alternating arm raises, torso twist
            bounce = 0.5 + 0.5 * np.sin(2 * ph)
            knee = np.radians(8 + 22 * a * bounce)
            leg("left", knee * 0.55 + np.radians(4) * np.sin(ph), knee, 0.9)
            leg("right", knee * 0.55 - np.radians(4) * np.sin(ph), knee, 0.9)
            R[J["left_hip"]] = R[J["left_hip"]] @ _rz(np.radians(5))
            R[J["right_hip"]] = R[J["right_hip"]] @ _rz(-np.radians(5))
            for side, off in (("left", 0.0), ("right", np.pi)):
                lift = 0.5 + 0.5 * np.sin(ph + off)
                arm(side, down - np.radians(45) * a * lift, np.radians(20) * np.cos(ph + off),
                    np.radians(25 + 40 * lift))
            R[J["spine2"]] = _ry(np.radians(12) * a * np.sin(ph))
            R[J["spine1"]] = _rz(np.radians(4) * np.sin(ph))
            R[J["head"]] = _ry(-np.radians(10) * np.sin(ph))
        return R

    def body_pose(self, t: float) -> np.ndarray:
        """(21,3) SMPL-X ``body_pose`` axis-angles at time ``t``."""
        R = self.local_rotations(t)
        return np.stack([matrix_to_axis_angle(R[j]) for j in range(1, NUM_JOINTS)])

    def yaw(self, t: float) -> float:
        return self.yaw0 + self.yaw_rate * t


def sole_points(skel: RestSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """Rest points on the soles (heel, ball, toe of each foot) at floor level and the joints that carry them."""
    pts, owners = [], []
    for side in ("left", "right"):
        for name, owner in (("heel", "ankle"), ("ball", "ankle"), ("toe", "foot")):
            p = skel.landmarks[f"{side}_{name}"].copy()
            p[1] = skel.floor_y
            pts.append(p)
            owners.append(J[f"{side}_{owner}"])
    return np.array(pts), np.array(owners)


def pose_at(motion: Motion, skel_model: RestSkeleton, scale: float, t: float) -> Pose:
    """The true pose at time ``t``: joint angles, facing, and a translation that keeps the lowest sole on the floor.

    ``skel_model`` is the skeleton in SMPL-X model units (true size / ``scale``).
    """
    body_pose = motion.body_pose(t)
    go = world_orient(motion.yaw(t))
    pose = Pose(go, body_pose, np.zeros(3), scale)
    soles, owners = sole_points(skel_model)
    feet = rigid_points(soles, owners, skel_model.joints, pose)  # world, y down
    lowest = feet[:, 1].max()
    drift = 0.03 * np.array([np.sin(0.7 * t + 6 * motion.phase), np.cos(0.5 * t + 6 * motion.phase)])
    # the pelvis sits at the model origin, so its world position is scale * transl
    pose.transl = np.array([motion.x0 + drift[0], FLOOR_Y - lowest, motion.z0 + drift[1]]) / scale
    return pose
