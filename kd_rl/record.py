"""Videos of a policy acting: seeded episodes rendered headless, written as MP4 or GIF.

`record` plays ``episodes`` episodes (episode ``i`` reset with seed ``seed + i``)
with the policy acting deterministically, as `kd_rl.evaluate.run_episodes` makes
it act (`kd_rl.policies.as_policy_fn` then `kd_rl.policies.to_actions`: argmax
of the logits, or a continuous policy's deterministic action). Every step is
rendered with Gymnasium's ``render_mode="rgb_array"``, so no window or display
is needed. Each frame carries a label strip: the episode and the return so far.

With a ``teacher``, both play the same seeds side by side, student on the left
and teacher on the right; when one ends its episode first its last frame is
held until the other ends, so both panels always show the same episode.

MP4 is written through imageio's ffmpeg plugin (H.264, ``yuv420p``, frames
padded with black to multiples of 16 pixels, which H.264 and ``yuv420p`` need),
as the frames come; it needs the ``video`` extra (``pip install "kd_rl[video]"``:
imageio and imageio-ffmpeg, which ships an ffmpeg binary). GIF is written with
Pillow alone, in one 256-colour palette taken from the first frame (so a held
frame stays exactly the same); Pillow writes a GIF in one go, so its frames are
kept in memory until the end (one byte a pixel): record long clips as MP4.
Either file is written atomically (`kd_rl._io.atomic_path`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from kd_rl._io import atomic_path
from kd_rl._validate import check_float, check_int, check_seed
from kd_rl.envs import EnvGroup, has_display, make_gymnasium_env
from kd_rl.errors import KdRlError, MissingDependency
from kd_rl.evaluate import NOISE_SEED_OFFSET, check_model_fits_env, episode_cap
from kd_rl.games import env_kwargs_for
from kd_rl.models import sensor_noise_std
from kd_rl.multitask import MultiTaskStudent
from kd_rl.policies import PolicyMemory, as_policy_fn, load_any_policy, sensor_readings, to_actions

__all__ = ["VIDEO_SUFFIXES", "INSTALL_HINT", "record", "require_video", "check_renders"]

#: The files `record` writes, by suffix.
VIDEO_SUFFIXES = (".mp4", ".gif")
INSTALL_HINT = 'pip install "kd_rl[video]"'

#: Frames per second when the environment's metadata gives no ``render_fps``.
DEFAULT_FPS = 30
#: Height of the label strip above each panel, and the size of its font (pixels).
_LABEL_HEIGHT, _FONT_SIZE = 20, 14
#: Width of the grey bar between side-by-side panels (pixels).
_GAP = 4
#: H.264 with yuv420p needs even sides; multiples of 16 (its macroblock) also keep ffmpeg from rescaling.
_MACRO_BLOCK = 16


def require_video(suffix: str = ".mp4") -> None:
    """Raise `MissingDependency` naming the ``video`` extra unless what ``suffix`` needs imports.

    Pillow always (the labels, and GIF; matplotlib already needs it); for MP4, imageio and imageio-ffmpeg.
    """
    try:
        from PIL import ImageDraw  # noqa: F401

        if suffix == ".mp4":
            import imageio.v2  # noqa: F401
            import imageio_ffmpeg  # noqa: F401
    except ImportError as err:
        raise MissingDependency(f"recording a video needs imageio and imageio-ffmpeg ({err}): {INSTALL_HINT}") from None


def check_renders(env_id: str, env_kwargs: dict | None = None) -> float | None:
    """Check that ``env_id`` renders off-screen (``"rgb_array"`` in its ``metadata["render_modes"]``).

    Returns:
        The environment's ``metadata["render_fps"]``, or None if it gives none.

    Raises:
        KdRlError: Naming the environment and the render modes it has.
    """
    env = make_gymnasium_env(env_id, **(env_kwargs or {}))
    try:
        metadata = env.metadata or {}
    finally:
        env.close()
    modes = list(metadata.get("render_modes") or [])
    if "rgb_array" not in modes:
        raise KdRlError(
            f"environment {env_id!r} cannot be recorded: it does not render to images "
            f"(its render modes: {', '.join(map(repr, modes)) or 'none'}; recording needs 'rgb_array')"
        )
    fps = metadata.get("render_fps")
    return float(fps) if fps else None


def _policy(policy_or_path, env_id: str, role: str, env_kwargs: dict | None):
    """The policy to act with (loaded if a path or zoo name), checked against the environment."""
    policy = load_any_policy(policy_or_path) if isinstance(policy_or_path, str | os.PathLike) else policy_or_path
    if isinstance(policy, MultiTaskStudent):
        policy = policy.for_task(env_id)
    check_model_fits_env(policy, env_id, role, env_kwargs)
    return policy


def record(
    policy_or_path,
    env_id: str,
    out: str | os.PathLike,
    *,
    episodes: int = 1,
    seed: int = 0,
    teacher=None,
    env_kwargs: dict | None = None,
    fps: float | None = None,
    max_steps: int | None = None,
) -> dict:
    """Write a video of ``policy_or_path`` playing ``episodes`` seeded episodes of ``env_id``.

    Args:
        policy_or_path: A Keras model, a ``PolicyFn`` object, or anything
            `kd_rl.policies.load_any_policy` loads (``.keras``, ``.tflite``,
            ``.npz``, a zoo name). A multi-task student plays its ``env_id`` task.
        env_id: Gymnasium environment id; it must offer ``render_mode="rgb_array"``.
        out: ``.mp4`` or ``.gif`` file to write.
        episodes: Number of episodes (>= 1); episode ``i`` is reset with seed ``seed + i``.
        seed: Seed of the first episode (>= 0).
        teacher: Optional second policy (same forms), shown on the right on the same seeds.
        env_kwargs: Passed to ``gymnasium.make`` (without ``render_mode``: `record` sets it).
        fps: Frames per second of the video; default the environment's
            ``metadata["render_fps"]``, else 30.
        max_steps: Cap on steps per episode; None: the environment's own time
            limit (`kd_rl.evaluate.episode_cap`).

    Returns:
        ``{"path", "frames", "fps", "seeds", "returns", "lengths", "teacher_returns",
        "teacher_lengths"}``; the teacher's are None without a teacher.

    Raises:
        KdRlError: For another suffix, ``episodes`` < 1, an environment without
            ``rgb_array`` rendering, or a policy that does not fit the
            environment; nothing is written.
        MissingDependency: For MP4, if imageio or imageio-ffmpeg is not installed.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise KdRlError(f"the video file must end in .mp4 or .gif, got {str(out)!r}")
    episodes = check_int("episodes", episodes)
    seed = check_seed(seed)
    max_steps = check_int("max_steps", max_steps, allow_none=True)
    if fps is not None and check_float("fps", fps) <= 0:
        raise KdRlError(f"fps must be a number > 0, got {fps!r}")
    env_kwargs = dict(env_kwargs or {})
    if "render_mode" in env_kwargs:
        raise KdRlError("record sets render_mode='rgb_array' itself: leave render_mode out of the env_kwargs")
    require_video(suffix)
    env_fps = check_renders(env_id, env_kwargs)  # before any model is loaded
    fps = float(fps or env_fps or DEFAULT_FPS)
    policies = [_policy(policy_or_path, env_id, "model", env_kwargs)]
    env_kwargs = env_kwargs_for(policies[0], env_id, env_kwargs)  # an Atari model's own preprocessing
    if teacher is not None:
        policies.append(_policy(teacher, env_id, "teacher", env_kwargs))
    roles = ["student", "teacher"] if teacher is not None else [None]
    cap = episode_cap(env_id, max_steps, env_kwargs)
    seeds = [seed + i for i in range(episodes)]
    if not has_display():
        # pygame (the classic-control and Box2D renderers) otherwise looks for a display and complains on stderr.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

    with atomic_path(out) as tmp, _VideoWriter(tmp, suffix, fps) as write:
        returns, lengths, frames = _play(policies, roles, env_id, seeds, cap, env_kwargs, write)
    return {
        "path": str(out),
        "frames": frames,
        "fps": fps,
        "seeds": seeds,
        "returns": returns[0],
        "lengths": lengths[0],
        "teacher_returns": returns[1] if teacher is not None else None,
        "teacher_lengths": lengths[1] if teacher is not None else None,
    }


def _play(policies, roles, env_id, seeds, cap, env_kwargs, write) -> tuple[list, list, int]:
    """Play every seed with every policy in lockstep, one environment each; write one frame per step.

    Returns:
        ``(returns, lengths, frames)``: per policy, a list over episodes; and the frames written.
    """
    n = len(policies)
    # A student trained with sensor noise sees it here too, drawn as kd_rl.evaluate.run_episodes draws it.
    rng = np.random.default_rng([NOISE_SEED_OFFSET, *seeds])
    stds = [sensor_noise_std(p) for p in policies]
    sensors = [None if std is None else sensor_readings(std, rng) for std in stds]

    def sense(j, x):
        return x if sensors[j] is None else sensors[j](x)

    returns, lengths = [[] for _ in range(n)], [[] for _ in range(n)]
    frames = 0
    with EnvGroup(env_id, n, {**env_kwargs, "render_mode": "rgb_array"}) as envs:
        for episode, seed in enumerate(seeds):
            obs = envs.reset([seed] * n)
            # What each policy remembers of its episode (a window of readings, a recurrent state).
            memories = [PolicyMemory(p, 1, envs.obs_dim, as_policy_fn(p)) for p in policies]
            total = np.zeros(n)
            steps = np.zeros(n, dtype=np.int64)
            active = np.ones(n, dtype=bool)
            shown = [_render(env, env_id) for env in envs.envs]
            while True:
                labels = [_label(role, episode, len(seeds), total[j], not active[j]) for j, role in enumerate(roles)]
                write(_compose(shown, labels))
                frames += 1
                if not active.any():
                    break
                for j in np.flatnonzero(active):
                    action = to_actions(policies[j], memories[j]([0], sense(j, obs[j : j + 1])))
                    obs[j : j + 1], reward, terminated, truncated = envs.step(action, [j])
                    total[j] += reward[0]
                    steps[j] += 1
                    if terminated[0] or truncated[0] or (cap is not None and steps[j] >= cap):
                        active[j] = False
                    shown[j] = _render(envs.envs[j], env_id)  # a finished one keeps its last frame
            for j in range(n):
                returns[j].append(float(total[j]))
                lengths[j].append(int(steps[j]))
    return returns, lengths, frames


def _render(env, env_id: str) -> np.ndarray:
    frame = env.render()
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise KdRlError(f"environment {env_id!r} rendered an array of shape {frame.shape}, not an RGB image")
    scale = -(-_MIN_SIDE // min(frame.shape[:2]))  # MinAtar draws 10 x 10 pixels: blown up, pixel by pixel
    if scale > 1:
        frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


def _label(role: str | None, episode: int, episodes: int, total: float, done: bool) -> str:
    text = f"episode {episode + 1}/{episodes}   return {total:.1f}" + ("   (done)" if done else "")
    return text if role is None else f"{role}   {text}"


#: Frames smaller than this many pixels on a side are enlarged by a whole factor (nearest neighbour).
_MIN_SIDE = 160


@functools.cache
def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=_FONT_SIZE)
    except (ImportError, OSError, TypeError):  # Pillow without FreeType: its fixed-size bitmap font
        return ImageFont.load_default()


def _compose(panels: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """Each panel under its label strip, side by side with a grey bar between: ``uint8 [label + height, width', 3]``."""
    from PIL import Image, ImageDraw

    font = _font()
    labelled = []
    for panel, label in zip(panels, labels):
        strip = Image.new("RGB", (panel.shape[1], _LABEL_HEIGHT), (0, 0, 0))
        ImageDraw.Draw(strip).text((4, 2), label, fill=(255, 255, 255), font=font)
        if labelled:
            labelled.append(np.full((_LABEL_HEIGHT + panel.shape[0], _GAP, 3), 128, np.uint8))
        labelled.append(np.concatenate([np.asarray(strip), panel], axis=0))
    return np.concatenate(labelled, axis=1)


def _pad(frame: np.ndarray, block: int) -> np.ndarray:
    """``frame`` padded with black at the bottom and right to multiples of ``block`` pixels."""
    height, width = frame.shape[:2]
    pad = ((0, -height % block), (0, -width % block), (0, 0))
    return np.pad(frame, pad) if any(p[1] for p in pad) else frame


class _VideoWriter:
    """``with _VideoWriter(path, suffix, fps) as write: write(frame)``: frames ``uint8 [h, w, 3]`` of one size."""

    def __init__(self, path, suffix: str, fps: float):
        self.path, self.suffix, self.fps = str(path), suffix, fps
        self._mp4 = None
        self._gif: list = []

    def __enter__(self):
        if self.suffix == ".mp4":
            import imageio.v2

            self._mp4 = imageio.v2.get_writer(
                self.path, format="FFMPEG", mode="I", fps=self.fps, codec="libx264", pixelformat="yuv420p",
                macro_block_size=_MACRO_BLOCK, ffmpeg_log_level="error",
            )  # fmt: skip
            return lambda frame: self._mp4.append_data(_pad(frame, _MACRO_BLOCK))
        return self._add_gif_frame

    def _add_gif_frame(self, frame: np.ndarray) -> None:
        from PIL import Image

        image = Image.fromarray(frame)
        if not self._gif:  # the palette: the first frame's 256 colours
            self._gif.append(image.quantize(256, dither=Image.Dither.NONE))
        else:
            self._gif.append(image.quantize(palette=self._gif[0], dither=Image.Dither.NONE))

    def __exit__(self, exc_type, *exc) -> None:
        if self._mp4 is not None:
            self._mp4.close()
        elif exc_type is None and self._gif:
            first, *rest = self._gif
            duration = round(1000 / self.fps)  # milliseconds (GIF keeps hundredths of a second)
            first.save(self.path, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)
