"""The conformance check every method gets for free: :func:`check_method` and ``bench test-method ID``.

Modelled on nerfbaselines' ``test-method``. On tiny synthetic GeneBody-format people it generates itself, it loads
the method through the registry (which checks the class's members) and runs a list of named checks (:data:`CHECKS`;
append a :class:`Check` to add one). Each check returns a detail line or raises; the report lists every check with
``passed`` and ``detail``.

For every method:
  * ``class contract``: the class imports and has the members and constructor its kind needs;
  * ``declared inputs``: the data provides what the spec's ``inputs`` say (as ``bench run`` checks when planning);
  * ``config refusal``: an unknown config key is refused with an error naming it;
  * ``presets``: the method builds with every preset its spec names;
  * ``render contract``: :class:`~bench.harness.method.RenderOutput` keys, shapes, float32, finite, colour and
    alpha in [0,1], depth >= 0 in plausible metres and 0 where alpha is 0, and colour within alpha of the
    request's (non-black) background.
For learned methods also, through the harness's own loop (:func:`bench.harness.trainer.train_loop`):
  * ``train, save, reload``: N steps, the checkpoint reloads with ``loaded_step == N`` and renders identically;
  * ``resume bit-exact``: k steps, checkpoint, a new instance from it, N - k more steps: renders and checkpoint
    contents (weights, optimiser, RNG) equal the straight run's;
  * ``data-parallel (2 ranks)``: for specs declaring ``distributed``, 2-rank gloo training through the harness
    equals the gradient-averaged single-process step (:func:`bench.harness.ddp_check.check_data_parallel`).

Length: the check list reads as one specification of the contract; each check is a few lines beside the others.
"""
from __future__ import annotations

import logging
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .method import KINDS, LEARNED_KINDS, ConfigError, MethodSpec, RenderRequest, TrainData

log = logging.getLogger("bench")

BACKGROUND = (0.25, 0.5, 0.75)  # renders use a non-black background, so "background outside the person" can fail
UNKNOWN_KEY = "no_such_key_bench_conformance"
DEPTH_MARGIN = 1.0  # metres: opaque depth must lie within the body's camera-depth range widened by this much
OUTPUT_KEYS = ("color", "alpha", "depth")


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str


@dataclass
class ConformanceReport:
    method_id: str
    kind: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def raise_for_failures(self) -> None:
        if not self.ok:
            lines = "; ".join(f"{r.name}: {r.detail}" for r in self.failures())
            raise ConformanceError(f"{self.method_id} fails the method contract: {lines}")


class ConformanceError(AssertionError):
    """A method failed one or more conformance checks."""


@dataclass
class Context:
    """What checks share: the method, its resolved config, the tiny data and a scratch folder."""

    spec: MethodSpec
    config: dict
    root: Path  # synthetic GeneBody-format data
    train_data: TrainData  # the training split under the protocol
    requests: list[RenderRequest]  # test-split targets, background BACKGROUND
    workdir: Path
    steps: int
    resume_at: int
    seed: int
    cls: type | None = None
    trained: object | None = None  # the learned method after ``steps`` steps (set by "train, save, reload")
    trained_renders: list[dict] | None = None
    straight_dir: Path | None = None

    def build(self, **kwargs):
        """A method instance, made as the harness makes one (torch seeded as a job seeds it)."""
        if self.spec["kind"] in LEARNED_KINDS:
            import torch

            torch.manual_seed(self.seed)
        return self.cls(config_overrides=self.config, **kwargs)


@dataclass
class Check:
    name: str
    run: Callable[[Context], str]
    kinds: tuple[str, ...] = KINDS
    needs: tuple[str, ...] = ()  # checks that must have passed first


def check_method(method_id: str, *, preset: str | None = None, overrides: dict | None = None, steps: int = 4,
                 resume_at: int = 2, crop_size: int = 48, seed: int = 0, root: str | Path | None = None,
                 workdir: str | Path | None = None) -> ConformanceReport:
    """Run :data:`CHECKS` on a registered method; returns the report (see :meth:`ConformanceReport.raise_for_failures`).

    preset:    default ``cpu-smoke`` when the spec has it, else the spec's default preset; ``overrides`` go on top
    steps:     training steps of the straight run; ``resume_at``: where the resumed run is interrupted
    crop_size: the protocol's image size (targets are crop_size x crop_size)
    root:      existing synthetic GeneBody-format data (default: generated in the work folder)
    workdir:   scratch folder kept afterwards (default: a temporary one, removed)
    """
    from .registry import get_spec, resolve_config

    if not 0 < resume_at < steps:
        raise ValueError(f"need 0 < resume_at < steps, got resume_at={resume_at}, steps={steps}")
    spec = get_spec(method_id)
    if preset is None and "cpu-smoke" in spec.get("presets", {}):
        preset = "cpu-smoke"
    config = resolve_config(spec, preset, overrides)
    with tempfile.TemporaryDirectory(prefix="bench-test-method-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        if any((work / d).exists() for d in ("straight", "resumed")):
            raise ValueError(f"{work} already holds a test-method run (straight/, resumed/); give an empty folder")
        work.mkdir(parents=True, exist_ok=True)
        ctx = _context(spec, config, Path(root) if root else None, work, steps, resume_at, crop_size, seed)
        report = ConformanceReport(method_id, spec["kind"])
        for check in CHECKS:
            if spec["kind"] not in check.kinds:
                continue
            failed = [r.name for r in report.results if r.name in check.needs and not r.passed]
            if failed:
                report.results.append(CheckResult(check.name, False, f"not run: {', '.join(failed)} failed"))
                continue
            try:
                report.results.append(CheckResult(check.name, True, check.run(ctx)))
            except Exception as e:  # a failing check is a result, not a crash
                log.debug("conformance check %r of %s failed:\n%s", check.name, method_id, traceback.format_exc())
                report.results.append(CheckResult(check.name, False, f"{type(e).__name__}: {e}"))
    return report


def _context(spec, config, root, work, steps, resume_at, crop_size, seed) -> Context:
    from bench.datasets.genebody import GeneBodyReader
    from bench.datasets.protocols import get_protocol
    from bench.datasets.synthetic import generate_genebody

    if root is None:
        root = generate_genebody(work / "data", subjects=2, test_subjects=1, frames=1, num_cameras=38,
                                 width=2 * crop_size, height=2 * crop_size, seed=seed)
    reader = GeneBodyReader(root)
    protocol = get_protocol("genebody-gnr").with_overrides(
        **{**reader.info().get("protocol_overrides", {}), "crop_size": crop_size, "frame_step": 1})
    subject = reader.subjects("test")[0]
    frame = reader.frames(subject)[0]
    views = reader.view_ids(subject)
    sources = [protocol.prepare(reader.load_view(subject, v, frame)) for v in protocol.sources(views)]
    body = reader.load_body(subject, frame)
    requests = []
    for target in protocol.targets(views)[::9][:2]:
        camera = protocol.prepare(reader.load_view(subject, target, frame)).camera
        requests.append(RenderRequest(subject=subject, frame=frame, camera=camera, sources=sources, body=body,
                                      background=BACKGROUND, target_id=target))
    return Context(spec=spec, config=config, root=Path(root), train_data=TrainData(reader, protocol),
                   requests=requests, workdir=work, steps=steps, resume_at=resume_at, seed=seed)


# --- the checks ---------------------------------------------------------------------------------------------------
def _class_contract(ctx: Context) -> str:
    from .method import required_members
    from .registry import load_method_class

    ctx.cls = load_method_class(ctx.spec)
    return f"{ctx.spec['method_class']} has {', '.join(required_members(ctx.spec['kind']))} and the keyword constructor"


def _declared_inputs(ctx: Context) -> str:
    from .plan import check_inputs

    reader = ctx.train_data.reader
    check_inputs(ctx.spec, reader, "genebody", reader.subjects(), ctx.config)
    return f"synthetic GeneBody provides {', '.join(ctx.spec.get('inputs', [])) or 'nothing needed'}"


def _config_refusal(ctx: Context) -> str:
    try:
        ctx.cls(config_overrides={**ctx.config, UNKNOWN_KEY: 1})
    except ConfigError as e:
        if UNKNOWN_KEY not in str(e):
            raise AssertionError(f"refused the unknown key {UNKNOWN_KEY!r} without naming it: {e}") from None
        return f"{type(e).__name__}: {e}"[:160]
    raise AssertionError(f"accepted the unknown config key {UNKNOWN_KEY!r} (use bench.harness.method.merge_config)")


def _presets(ctx: Context) -> str:
    from .registry import resolve_config

    presets = ctx.spec.get("presets", {})
    for name in presets:
        ctx.cls(config_overrides=resolve_config(ctx.spec, name))  # raises naming a key the method does not have
    return f"builds with {', '.join(presets)}" if presets else "the spec has no presets"


def _render_all(method, requests: list[RenderRequest]) -> list[dict]:
    return [dict(method.render(r)) for r in requests]


def _same_renders(a: list[dict], b: list[dict]) -> list[str]:
    """Keys that differ between two lists of render outputs (bit for bit)."""
    diff = []
    for i, (x, y) in enumerate(zip(a, b)):
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y or not np.array_equal(np.asarray(x[k]), np.asarray(y[k])):
                diff.append(f"request {i} {k!r}")
    return diff


def _train_save_reload(ctx: Context) -> str:
    from .trainer import checkpoint_step, checkpoints, train_loop

    method = ctx.build(train_data=ctx.train_data)
    info = method.get_info()
    if not isinstance(info.get("num_iterations"), int):
        raise AssertionError(f"get_info()['num_iterations'] must be an int, got {info.get('num_iterations')!r}")
    ctx.straight_dir = ctx.workdir / "straight"
    ctx.straight_dir.mkdir()
    train_loop(method, ctx.straight_dir, 0, ctx.steps, checkpoint_every=ctx.resume_at)
    ckpts = {checkpoint_step(c): c for c in checkpoints(ctx.straight_dir)}
    if sorted(ckpts) != [ctx.resume_at, ctx.steps]:
        raise AssertionError(f"expected checkpoints at steps {ctx.resume_at} and {ctx.steps}, found {sorted(ckpts)}")
    ctx.trained, ctx.trained_renders = method, _render_all(method, ctx.requests)
    loaded = ctx.build(checkpoint=str(ckpts[ctx.steps]))
    step = loaded.get_info().get("loaded_step")
    if step != ctx.steps:
        raise AssertionError(f"reloaded get_info()['loaded_step'] is {step!r}, expected {ctx.steps}")
    diff = _same_renders(ctx.trained_renders, _render_all(loaded, ctx.requests))
    if diff:
        raise AssertionError(f"the reloaded checkpoint renders differently: {', '.join(diff)}")
    return f"{ctx.steps} steps, checkpoint reloads at step {step} and renders identically"


def _resume_bit_exact(ctx: Context) -> str:
    from .trainer import checkpoints, latest_checkpoint, train_loop

    first = checkpoints(ctx.straight_dir)[0]
    resumed = ctx.build(checkpoint=str(first), train_data=ctx.train_data)
    step = resumed.get_info().get("loaded_step")
    if step != ctx.resume_at:
        raise AssertionError(f"resumed get_info()['loaded_step'] is {step!r}, expected {ctx.resume_at}")
    (ctx.workdir / "resumed").mkdir()
    train_loop(resumed, ctx.workdir / "resumed", ctx.resume_at, ctx.steps, checkpoint_every=ctx.steps)
    diff = _same_renders(ctx.trained_renders, _render_all(resumed, ctx.requests))
    diff += checkpoint_differences(latest_checkpoint(ctx.straight_dir), latest_checkpoint(ctx.workdir / "resumed"))
    if diff:
        raise AssertionError(f"{ctx.resume_at} steps + reload + {ctx.steps - ctx.resume_at} steps differs from "
                             f"{ctx.steps} straight steps: {', '.join(diff[:6])}")
    return f"{ctx.resume_at} + {ctx.steps - ctx.resume_at} steps = {ctx.steps} straight: renders and checkpoints equal"


def _render_contract(ctx: Context) -> str:
    renders = ctx.trained_renders
    if renders is None:
        renders = _render_all(ctx.build(), ctx.requests)
    notes = set()
    for request, out in zip(ctx.requests, renders):
        notes |= render_problems(request, out)
    problems = sorted(n for n in notes if not n.startswith("note: "))
    if problems:
        raise AssertionError("; ".join(problems))
    keys = sorted(set().union(*renders))
    return f"{len(renders)} renders: {', '.join(keys)} as RenderOutput says" + "".join(
        f"; {n[6:]}" for n in sorted(notes) if n.startswith("note: "))


def _data_parallel(ctx: Context) -> str:
    if not ctx.spec.get("distributed"):
        return "not declared (spec 'distributed'): the harness refuses to train it on more than one rank"
    from .ddp_check import check_data_parallel

    proto = ctx.train_data.protocol
    r = check_data_parallel(ctx.spec["id"], root=ctx.root, protocol=proto.name, tmp_path=ctx.workdir / "ddp",
                            config=ctx.config, protocol_overrides={"crop_size": proto.crop_size, "frame_step": 1})
    return (f"{r['world_size']} gloo ranks == the gradient-averaged step (max relative difference "
            f"{r['max_relative_diff']:.1g}; {r['opposite_sign_gradients']} gradients disagree in sign across ranks)")


CHECKS: list[Check] = [
    Check("class contract", _class_contract),
    Check("declared inputs", _declared_inputs),
    Check("config refusal", _config_refusal, needs=("class contract",)),
    Check("presets", _presets, needs=("class contract",)),
    Check("train, save, reload", _train_save_reload, LEARNED_KINDS, needs=("class contract",)),
    Check("resume bit-exact", _resume_bit_exact, LEARNED_KINDS, needs=("train, save, reload",)),
    Check("render contract", _render_contract, needs=("class contract",)),
    Check("data-parallel (2 ranks)", _data_parallel, LEARNED_KINDS, needs=("train, save, reload",)),
]


# --- helpers other checks can use --------------------------------------------------------------------------------
def render_problems(request: RenderRequest, out: dict) -> set[str]:
    """What in one render breaks :class:`~bench.harness.method.RenderOutput` (strings starting ``note: `` are not
    failures). Colour must stay within ``alpha`` of the background (premultiplied compositing)."""
    H, W = request.camera.height, request.camera.width
    found: set[str] = set()
    extra = sorted(set(out) - set(OUTPUT_KEYS))
    if extra:
        found.add(f"keys {extra} are not RenderOutput keys {OUTPUT_KEYS}")
    if "color" not in out:
        return found | {"no 'color'"}
    arrays = {}
    for key, shape in (("color", (H, W, 3)), ("alpha", (H, W)), ("depth", (H, W))):
        if key not in out:
            continue
        a = out[key]
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != np.float32:
            found.add(f"{key!r} must be a float32 numpy array of shape {shape}, got "
                      f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}")
        elif not np.isfinite(a).all():
            found.add(f"{key!r} has NaN or inf")
        else:
            arrays[key] = a
    color, alpha, depth = arrays.get("color"), arrays.get("alpha"), arrays.get("depth")
    if color is not None and not (color.min() >= 0 and color.max() <= 1):
        found.add(f"'color' leaves [0,1]: [{color.min():.4g}, {color.max():.4g}]")
    if alpha is not None and not (alpha.min() >= 0 and alpha.max() <= 1 + 1e-5):
        found.add(f"'alpha' leaves [0,1]: [{alpha.min():.4g}, {alpha.max():.4g}]")
    if color is not None and alpha is not None:
        off = np.abs(color - np.asarray(request.background, np.float32)).max(-1) - alpha  # (H,W)
        if off.max() > 1e-3:
            n = int((off > 1e-3).sum())
            found.add(f"{n} pixel(s) differ from the background {request.background} by more than their alpha "
                      f"(worst by {off.max():.3g}): colour outside the person must be the request's background")
    elif color is not None:
        found.add("note: no alpha, so the background was not checked")
    if depth is not None:
        found |= _depth_problems(request, depth, alpha)
    return found


def _depth_problems(request: RenderRequest, depth: np.ndarray, alpha: np.ndarray | None) -> set[str]:
    if depth.min() < 0:
        return {f"'depth' is negative (min {depth.min():.4g}); it is camera z in metres, 0 where empty"}
    found = set()
    if alpha is not None and (depth[alpha == 0] != 0).any():
        found.add("'depth' is not 0 where alpha is 0")
    if request.body is not None:
        z = request.camera.world_to_camera(request.body.vertices)[:, 2]
        lo, hi = z.min() - DEPTH_MARGIN, z.max() + DEPTH_MARGIN
        # surface depth, or the opacity-weighted expectation (depth / alpha is then the surface depth)
        seen = alpha >= 0.5 if alpha is not None else depth > 0
        surface = depth / np.maximum(alpha, 0.5) if alpha is not None else depth
        bad = seen & ((depth < lo) | (depth > hi)) & ((surface < lo) | (surface > hi))
        if bad.any():
            found.add(f"'depth' of {int(bad.sum())} opaque pixel(s) outside [{lo:.2f}, {hi:.2f}] m (the body's "
                      f"camera z +- {DEPTH_MARGIN} m), e.g. {float(depth[bad][0]):.4g}: depth must be camera z in "
                      "metres")
        elif not seen.any():
            found.add("note: no pixel with alpha >= 0.5, so depth units were not checked")
    return found


def checkpoint_differences(a: Path, b: Path) -> list[str]:
    """Files or entries that differ between two checkpoint folders (``.pt``/``.pth`` compared tensor by tensor,
    other files byte by byte; the harness's ``bench-checkpoint.json`` marker, which holds a time, is skipped)."""
    from .trainer import MARKER

    files_a = {p.relative_to(a) for p in Path(a).rglob("*") if p.is_file() and p.name != MARKER}
    files_b = {p.relative_to(b) for p in Path(b).rglob("*") if p.is_file() and p.name != MARKER}
    diff = [f"checkpoint file {f} in only one run" for f in sorted(files_a ^ files_b)]
    for rel in sorted(files_a & files_b):
        pa, pb = Path(a) / rel, Path(b) / rel
        if pa.read_bytes() == pb.read_bytes():
            continue
        if pa.suffix in (".pt", ".pth"):
            import torch

            diff += [f"{rel}{where}" for where in _tree_differences(torch.load(pa, weights_only=True),
                                                                    torch.load(pb, weights_only=True))]
        else:
            diff.append(f"checkpoint file {rel}")
    return diff


def _tree_differences(x, y, where: str = "") -> list[str]:
    import torch

    if isinstance(x, dict) and isinstance(y, dict):
        out = [f"{where}[{k!r}] in only one" for k in sorted(set(x) ^ set(y), key=str)]
        return out + [d for k in x if k in y for d in _tree_differences(x[k], y[k], f"{where}[{k!r}]")]
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)) and len(x) == len(y):
        return [d for i, (u, v) in enumerate(zip(x, y)) for d in _tree_differences(u, v, f"{where}[{i}]")]
    if torch.is_tensor(x) and torch.is_tensor(y):
        same = x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
    elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        same = np.array_equal(x, y)
    else:
        same = type(x) is type(y) and (x == y or (x != x and y != y))  # NaN equals NaN here
    return [] if same else [where or "value"]
