"""The synthetic person's skeleton: the 22 SMPL-X body joints, per-subject proportions, forward kinematics, LBS.

Model space follows SMPL-X: +y up, +x the subject's left, +z the direction the subject faces, metres, rest pose =
T-pose, pelvis at the origin. A pose is SMPL-X's: ``global_orient`` (3,) axis-angle about the pelvis,
``body_pose`` (21,3) axis-angles of joints 1..21 relative to their parent (in the rest frame, as SMPL-X does),
``transl`` (3,); posed world points are ``smplx_scale * (LBS(x) + transl)``, GeneBody's convention.
The flip to GeneBody's +y-down world is part of ``global_orient`` (see :func:`world_orient`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19])
J = {name: i for i, name in enumerate(JOINT_NAMES)}
NUM_JOINTS = len(JOINT_NAMES)

# Rest joints of an average ~1.72 m SMPL body relative to its pelvis (x left, y up, z forward), metres. Per-subject
# proportions scale pieces of this; mirrored joints are written for the left side only.
_BASE = {
    "left_hip": (0.068, -0.091, -0.004),
    "spine1": (0.0, 0.119, -0.024),
    "left_knee": (0.105, -0.452, -0.008),
    "spine2": (0.0, 0.255, 0.003),
    "left_ankle": (0.090, -0.847, -0.048),
    "spine3": (0.0, 0.310, -0.002),
    "left_foot": (0.119, -0.909, 0.080),
    "neck": (0.0, 0.510, -0.012),
    "left_collar": (0.076, 0.424, -0.019),
    "head": (0.0, 0.600, 0.040),
    "left_shoulder": (0.196, 0.459, -0.043),
    "left_elbow": (0.457, 0.443, -0.066),
    "left_wrist": (0.725, 0.452, -0.071),
}
_BASE_HEIGHT = 1.72
_BASE_PELVIS_HEIGHT = 0.935  # pelvis above the floor


@dataclass(frozen=True)
class Shape:
    """Body proportions of one subject (what SMPL-X ``betas`` would encode)."""

    height: float = 1.72  # metres, floor to the top of the head
    build: float = 1.0  # limb/torso radius multiplier: 0.85 slim .. 1.25 broad
    leg: float = 1.0  # leg length relative to the body
    arm: float = 1.0  # arm length relative to the body
    shoulders: float = 1.0  # shoulder width
    hips: float = 1.0  # hip width
    head: float = 1.0  # head size
    depth: float = 1.0  # torso front-to-back depth
    curves: float = 0.5  # 0 straight .. 1 curvy: narrow waist, wider hips, chest volume

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Shape":
        return cls(
            height=float(rng.uniform(1.52, 1.88)),
            build=float(rng.uniform(0.86, 1.22)),
            leg=float(rng.uniform(0.95, 1.05)),
            arm=float(rng.uniform(0.95, 1.05)),
            shoulders=float(rng.uniform(0.92, 1.1)),
            hips=float(rng.uniform(0.92, 1.1)),
            head=float(rng.uniform(0.94, 1.06)),
            depth=float(rng.uniform(0.9, 1.12)),
            curves=float(rng.uniform(0.0, 1.0)),
        )

    def betas(self) -> np.ndarray:
        """(10,) roughly unit-scaled encoding, stored as SMPL-X ``betas``."""
        return np.array([(self.height - 1.72) / 0.1, (self.build - 1.0) / 0.1, (self.leg - 1) / 0.03,
                         (self.arm - 1) / 0.03, (self.shoulders - 1) / 0.05, (self.hips - 1) / 0.05,
                         (self.head - 1) / 0.03, (self.depth - 1) / 0.06, (self.curves - 0.5) / 0.3, 0.0])

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RestSkeleton:
    joints: np.ndarray  # (22,3) rest joints, model space, true size
    landmarks: dict  # name -> (3,) extra rest points (hand ends, heels, toes, head centre, ...)
    floor_y: float  # model-space y of the floor under the rest pose (negative)


def rest_skeleton(shape: Shape) -> RestSkeleton:
    """Rest (T-pose) joints for a subject: the average layout stretched piecewise by the subject's proportions."""
    s = shape.height / _BASE_HEIGHT
    base = {k: np.array(v) for k, v in _BASE.items()}
    joints = np.zeros((NUM_JOINTS, 3))

    def put(name, p):
        p = np.asarray(p, dtype=np.float64)
        joints[J[name]] = p
        if name.startswith("left_"):
            joints[J["right_" + name[5:]]] = p * np.array([-1.0, 1.0, 1.0])

    # legs: vertical extent scales with height * leg ratio; lateral offsets with hip width
    leg_s = s * shape.leg
    hip_x = base["left_hip"][0] * s * shape.hips
    put("left_hip", (hip_x, base["left_hip"][1] * s, base["left_hip"][2] * s))
    hip = joints[J["left_hip"]]
    for name in ("left_knee", "left_ankle", "left_foot"):
        b = base[name]
        y = hip[1] + (b[1] - base["left_hip"][1]) * leg_s
        x = hip_x + (b[0] - base["left_hip"][0]) * s * (0.5 + 0.5 * shape.hips)
        put(name, (x, y, b[2] * s))
    # trunk: heights scale with the non-leg part of the height so the total matches shape.height
    # longer legs leave less of the height to the trunk, so the total stays shape.height
    trunk_s = s * (_BASE_HEIGHT - _BASE_PELVIS_HEIGHT * shape.leg) / (_BASE_HEIGHT - _BASE_PELVIS_HEIGHT)
    for name in ("spine1", "spine2", "spine3", "neck", "head"):
        b = base[name]
        put(name, (0.0, b[1] * trunk_s, b[2] * s))
    sh_w = s * shape.shoulders
    for name in ("left_collar", "left_shoulder"):
        b = base[name]
        put(name, (b[0] * sh_w, b[1] * trunk_s, b[2] * s))
    shoulder = joints[J["left_shoulder"]]
    arm_s = s * shape.arm
    for name in ("left_elbow", "left_wrist"):
        b = base[name]
        d = b - base["left_shoulder"]
        put(name, shoulder + d * np.array([arm_s, s, s]))

    head_r = 0.1 * s * shape.head
    floor_y = float(joints[J["left_ankle"], 1] - 0.08 * s)
    wrist = joints[J["left_wrist"]]
    elbow = joints[J["left_elbow"]]
    hand_dir = (wrist - elbow) / np.linalg.norm(wrist - elbow)
    ankle, foot = joints[J["left_ankle"]], joints[J["left_foot"]]
    lm = {
        "head_centre": joints[J["head"]] + np.array([0.0, 0.075, 0.012]) * s * shape.head,
        "head_radius": np.array([head_r * 0.78, head_r * 1.05, head_r * 0.92]),
        "left_hand_end": wrist + hand_dir * 0.175 * arm_s,
        "left_heel": np.array([ankle[0], floor_y + 0.035 * s, ankle[2] - 0.05 * s]),
        "left_toe": np.array([foot[0] + 0.01 * s, floor_y + 0.03 * s, foot[2] + 0.065 * s]),
        "left_ball": np.array([foot[0], floor_y + 0.035 * s, foot[2]]),
        "neck_base": np.array([0.0, joints[J["neck"], 1] - 0.06 * s, joints[J["neck"], 2]]),
    }
    for k in list(lm):
        if k.startswith("left_"):
            lm["right_" + k[5:]] = lm[k] * np.array([-1.0, 1.0, 1.0])
    return RestSkeleton(joints=joints, landmarks=lm, floor_y=floor_y)


# --- rotations and kinematics --------------------------------------------------------------------------------
def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Axis-angles (...,3) -> rotation matrices (...,3,3) (Rodrigues)."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)  # (...,1)
    k = aa / np.maximum(theta, 1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    K = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), K.shape)
    return eye + s * K + (1 - c) * (K @ K)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """Rotation matrix (3,3) -> axis-angle (3,) (stable for angles below pi)."""
    R = np.asarray(R, dtype=np.float64)
    cos = np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)
    theta = np.arccos(cos)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if theta < 1e-8:
        return 0.5 * w
    if np.pi - theta < 1e-4:  # near pi: axis from the symmetric part
        M = (R + np.eye(3)) / 2
        axis = M[np.argmax(np.diag(M))]
        axis = axis / np.linalg.norm(axis)
        return axis * theta
    return w * theta / (2 * np.sin(theta))


def world_orient(yaw: float, lean: np.ndarray | None = None) -> np.ndarray:
    """``global_orient`` (3,) placing a model-space body (+y up) into GeneBody's world (+y down) facing ``yaw``.

    The body turns by ``yaw`` about its vertical axis, optionally leans by the small axis-angle ``lean`` (model
    axes), then a half turn about x maps model +y (up) to world -y (up in a y-down world).
    """
    R = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0])) @ axis_angle_to_matrix(np.array([0.0, yaw, 0.0]))
    if lean is not None:
        R = R @ axis_angle_to_matrix(np.asarray(lean, dtype=np.float64))
    return matrix_to_axis_angle(R)


def global_transforms(joints: np.ndarray, rotmats: np.ndarray) -> np.ndarray:
    """Rest joints (22,3) and local rotations (22,3,3) -> global rigid transforms (22,4,4) of each joint frame."""
    G = np.zeros((NUM_JOINTS, 4, 4))
    G[:, 3, 3] = 1.0
    for j in range(NUM_JOINTS):
        p = PARENTS[j]
        local = np.eye(4)
        local[:3, :3] = rotmats[j]
        local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
        G[j] = local if p < 0 else G[p] @ local
    return G


def skinning_matrices(joints: np.ndarray, rotmats: np.ndarray) -> np.ndarray:
    """(22,3,4) matrices A_j mapping rest points rigidly attached to joint j to posed points: A_j [x;1]."""
    G = global_transforms(joints, rotmats)
    A = G[:, :3, :].copy()
    A[:, :, 3] -= np.einsum("jab,jb->ja", G[:, :3, :3], joints)
    return A


def lbs(points: np.ndarray, weights: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Linear blend skinning: rest points (N,3), weights (N,22), per-joint matrices (22,3,4) -> posed (N,3)."""
    M = (weights @ A.reshape(NUM_JOINTS, 12)).reshape(-1, 3, 4)  # (N,3,4)
    return np.einsum("nab,nb->na", M[:, :, :3], points) + M[:, :, 3]


@dataclass
class Pose:
    """One SMPL-X style body pose (radians, metres)."""

    global_orient: np.ndarray  # (3,)
    body_pose: np.ndarray  # (21,3)
    transl: np.ndarray  # (3,)
    scale: float = 1.0

    def rotmats(self) -> np.ndarray:
        return axis_angle_to_matrix(np.concatenate([self.global_orient[None], self.body_pose], axis=0))

    def copy(self) -> "Pose":
        return Pose(self.global_orient.copy(), self.body_pose.copy(), self.transl.copy(), float(self.scale))


def pose_points(points: np.ndarray, weights: np.ndarray, joints: np.ndarray, pose: Pose) -> np.ndarray:
    """Model-space rest points (N,3) with skinning weights (N,22) -> world points (N,3) under ``pose``."""
    A = skinning_matrices(joints, pose.rotmats())
    return pose.scale * (lbs(points, weights, A) + pose.transl)


def pose_joints(joints: np.ndarray, pose: Pose) -> np.ndarray:
    """World positions (22,3) of the posed joints."""
    G = global_transforms(joints, pose.rotmats())
    return pose.scale * (G[:, :3, 3] + pose.transl)


def rigid_points(points: np.ndarray, owners: np.ndarray, joints: np.ndarray, pose: Pose) -> np.ndarray:
    """Rest points (N,3) each carried rigidly by joint ``owners[i]`` -> world (N,3) (for extra keypoints)."""
    A = skinning_matrices(joints, pose.rotmats())[owners]  # (N,3,4)
    return pose.scale * (np.einsum("nab,nb->na", A[:, :, :3], points) + A[:, :, 3] + pose.transl)


def extra_keypoints(skel: RestSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """Rest positions (33,3) and owner joints (33,) of SMPL-X keypoints 22..54: jaw, eyes, 2 x 15 finger joints.

    Finger order follows SMPL-X: index, middle, pinky, ring, thumb, three joints each.
    """
    lm, jt = skel.landmarks, skel.joints
    hc, hr = lm["head_centre"], lm["head_radius"]
    pts = [hc + np.array([0.0, -0.75 * hr[1], 0.55 * hr[2]]),  # jaw
           hc + np.array([0.38 * hr[0], 0.05 * hr[1], 0.88 * hr[2]]),  # left eye
           hc + np.array([-0.38 * hr[0], 0.05 * hr[1], 0.88 * hr[2]])]  # right eye
    owners = [J["head"]] * 3
    for side in ("left", "right"):
        w = jt[J[f"{side}_wrist"]]
        end = lm[f"{side}_hand_end"]
        d = end - w
        hand_len = np.linalg.norm(d)
        d = d / hand_len
        fwd = np.array([0.0, 0.0, 1.0])
        for lateral, start, length in ((0.022, 0.42, 0.5), (0.007, 0.44, 0.56), (-0.025, 0.40, 0.4),
                                       (-0.009, 0.43, 0.52)):
            for k in range(3):
                pts.append(w + d * hand_len * (start + length * (k + 1) / 3.3) + fwd * lateral)
                owners.append(J[f"{side}_wrist"])
        for k in range(3):  # thumb: forward of the palm, pointing along the hand and forward
            pts.append(w + d * hand_len * (0.12 + 0.14 * k) + fwd * (0.03 + 0.012 * k))
            owners.append(J[f"{side}_wrist"])
    return np.array(pts), np.array(owners)
