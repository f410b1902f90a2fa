"""Scale-out: collection on Ray actors, the learner under tf.distribute (kd_rl.distributed).

The Ray tests share one local Ray instance of 2 CPUs; the tf.distribute tests
run in fresh processes, since logical devices and TF_CONFIG must be set
before TensorFlow initialises.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kd_rl.cli import main
from kd_rl.distill import DistillConfig, distill_policy
from kd_rl.distributed import (
    INSTALL_HINT,
    ActorLostError,
    DistributedCollector,
    _ray_connect_message,
    actor_seed,
    check_ray_address,
    require_ray,
    split_evenly,
)

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once the socket closes: nothing listens there


# ------------------------------------------------------------ without Ray


def test_shares_and_seeds_match_a_hand_computation():
    assert split_evenly(10, 3) == [4, 3, 3] and split_evenly(2, 4) == [1, 1, 0, 0] and sum(split_evenly(501, 4)) == 501
    expected = int(np.random.SeedSequence([7, 1, 0]).generate_state(1)[0]) >> 1
    assert actor_seed(7, 1) == expected and 0 <= expected < 2**31
    seeds = {actor_seed(7, i, g) for i in range(4) for g in range(3)} | {actor_seed(8, 0)}
    assert len(seeds) == 13  # every actor, generation and run seed draws its own episodes


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(actors=-1), "actors must be an int >= 0, got -1"),
        (dict(actors=1.5), "actors"),
        (dict(strategy="tpu"), "strategy must be one of default, mirrored, got 'tpu'"),
        (dict(ray_address="10.0.0.1:6379"), "ray_address='10.0.0.1:6379' needs actors >= 1"),
    ],
)
def test_bad_scale_out_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillConfig(**kwargs)


def test_bad_and_unreachable_addresses_are_one_clear_error():
    with pytest.raises(ValueError, match="host:port"):
        check_ray_address("nowhere")
    port = _closed_port()
    with pytest.raises(ConnectionError, match=f"cannot reach a Ray cluster at ray_address='127.0.0.1:{port}'"):
        check_ray_address(f"127.0.0.1:{port}", timeout=2)


def test_a_head_that_refuses_this_process_names_ray_auth_mode(monkeypatch, tmp_path, capsys):
    # Ray 2.60's `ray start --head` turns token authentication on; a client without
    # RAY_AUTH_MODE=token is refused after Ray's retries with "Failed to connect to Ray cluster".
    ray = pytest.importorskip("ray")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # the TCP check passes: something answers there
    address = f"127.0.0.1:{listener.getsockname()[1]}"

    def refused(*args, **kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    try:
        code = main(
            ["distill", "--teacher", "CartPole-v1-dqn", "--env", "CartPole-v1", "--actors", "2", "--ray-address",
             address, "--out", str(tmp_path / "run"), "--no-progress"]
        )  # fmt: skip
    finally:
        listener.close()
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and not (tmp_path / "run").exists(), err
    assert f"Ray did not accept a connection to ray_address='{address}'" in err
    assert "also needs RAY_AUTH_MODE=token in this shell" in err
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # set already: the hint would mislead, Ray's words only
    assert "RAY_AUTH_MODE" not in _ray_connect_message(address, ConnectionError("refused"))


def test_without_ray_actors_fail_with_the_install_command(monkeypatch, cartpole_teacher, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match="kd_rl\\[distributed\\]"):
        require_ray()
    with pytest.raises(ImportError, match="not installed"):
        distill_policy(cartpole_teacher, DistillConfig(actors=2), out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    _, metrics = distill_policy(
        cartpole_teacher, DistillConfig(steps=500, eval_every=0, eval_episodes=1), progress=False
    )
    assert metrics["actors"] == 0  # without actors Ray is never imported


@pytest.mark.parametrize(
    "flags, match, ray_missing",
    [
        (["--actors", "-1"], "--actors: expected an integer >= 0, got '-1'", False),
        (["--actors", "2"], INSTALL_HINT, True),
        (["--actors", "2", "--ray-address", "127.0.0.1:{port}"], "cannot reach a Ray cluster", False),
        (["--ray-address", "127.0.0.1:6379"], "needs actors >= 1", False),
    ],
)
def test_cli_bad_scale_out_input_is_one_line_exit_2_and_writes_nothing(
    flags, match, ray_missing, cartpole_teacher_path, tmp_path, capsys, monkeypatch
):
    if ray_missing:
        monkeypatch.setitem(sys.modules, "ray", None)
    flags = [f.format(port=_closed_port()) for f in flags]
    out = tmp_path / "run"
    argv = ["distill", "--teacher", str(cartpole_teacher_path), "--env", "CartPole-v1", "--out", str(out), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not out.exists()


# ------------------------------------------------------------ tf.distribute (fresh processes)

_MIRRORED = """
import json, sys
sys.path.insert(0, {tests!r})
import kd_rl
import tensorflow as tf
from kd_rl.distributed import make_strategy
{setup}
strategy = {strategy}  # first: a multi-worker strategy configures collectives before TensorFlow runs anything
import keras, numpy as np
from conftest import make_cartpole_teacher
from kd_rl.distill import make_distill_step
from kd_rl.models import StudentModel

teacher = make_cartpole_teacher()
obs = np.random.default_rng(0).normal(size=(4, 64, 4)).astype(np.float32)
logits = teacher(obs.reshape(-1, 4)).numpy().reshape(4, 64, 2)
keras.utils.set_random_seed(1)
reference = StudentModel(2, hidden_units=16, observation_dim=4)
reference.ensure_built()
initial = reference.get_weights()
step = make_distill_step(teacher, reference, keras.optimizers.Adam(1e-2), "kl", 1.0)
ref_losses = np.concatenate([step(obs, logits).numpy(), [step(obs[0]).numpy()]])
with strategy.scope():
    student = StudentModel(2, hidden_units=16, observation_dim=4)
    student.ensure_built()
    student.set_weights(initial)
    optimizer = keras.optimizers.Adam(1e-2)
mirrored = make_distill_step(teacher, student, optimizer, "kl", 1.0, strategy=strategy)
losses = np.concatenate([mirrored(obs, logits).numpy(), [mirrored(obs[0]).numpy()]])
try:
    mirrored(obs[0, :63])
    uneven = None
except ValueError as err:
    uneven = str(err)
print("RESULT " + json.dumps({{
    "replicas": strategy.num_replicas_in_sync,
    "loss_error": float(np.abs(losses - ref_losses).max()),
    "weight_error": max(float(np.abs(a - b).max()) for a, b in zip(reference.get_weights(), student.get_weights())),
    "moved": max(float(np.abs(a - b).max()) for a, b in zip(initial, student.get_weights())),
    "iterations": int(optimizer.iterations.numpy()),
    "uneven": uneven,
}}))
"""


def _run_mirrored(tmp_path, setup: str, strategy: str, env=None, workers: int = 1) -> list[dict]:
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED.format(tests=str(ROOT / "tests"), setup=setup, strategy=strategy))
    procs = []
    for index in range(workers):
        worker_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env(index) if env else {})}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=worker_env, stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        results.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:]))
    return results


def _check_equal_to_single_device(result: dict, replicas: int) -> None:
    assert result["replicas"] == replicas
    assert result["iterations"] == 5 and result["moved"] > 1e-3  # five real updates
    assert result["loss_error"] < 1e-5 and result["weight_error"] < 1e-5
    assert f"multiple of the {replicas} replicas" in result["uneven"]


def test_mirrored_step_on_two_cpu_devices_equals_the_single_device_step(tmp_path):
    setup = (
        'cpu = tf.config.list_physical_devices("CPU")[0]\n'
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)"
    )
    (result,) = _run_mirrored(tmp_path, setup, 'make_strategy("mirrored", ["/cpu:0", "/cpu:1"])')
    _check_equal_to_single_device(result, replicas=2)


@pytest.mark.slow
def test_multi_worker_mirrored_step_on_two_local_processes_equals_the_single_device_step(tmp_path):
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    cluster = {"worker": [f"localhost:{p}" for p in ports]}

    def env(index):
        return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}

    results = _run_mirrored(tmp_path, "", "tf.distribute.MultiWorkerMirroredStrategy()", env=env, workers=2)
    for result in results:  # both workers feed the same global batch and keep identical weights
        _check_equal_to_single_device(result, replicas=2)


# ------------------------------------------------------------ on a local Ray cluster


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason=f"Ray is not installed ({INSTALL_HINT})")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_actors_collect_what_local_collectors_with_their_seeds_collect_and_dead_ones_are_replaced(
    local_ray, cartpole_teacher
):
    from kd_rl.data import Collector
    from kd_rl.models import StudentModel

    student = StudentModel(2, hidden_units=8, observation_dim=4)
    student.ensure_built()
    first, second = student.get_weights(), [w + 0.3 for w in student.get_weights()]
    kwargs = dict(mode="student", num_envs=2, total_steps=1000)
    collector = DistributedCollector("CartPole-v1", cartpole_teacher, student, seed=3, actors=2, **kwargs)
    references = []
    try:
        obs_a, logits_a = collector.collect(101)
        student.set_weights(second)  # the next call broadcasts these
        obs_b, logits_b = collector.collect(40)

        # The reference: one in-process Collector per actor, seeded actor_seed(3, i), its student copy updated alike.
        for i in range(2):
            copy = StudentModel(2, hidden_units=8, observation_dim=4)
            copy.ensure_built()
            copy.set_weights(first)
            references.append((Collector("CartPole-v1", cartpole_teacher, copy, seed=actor_seed(3, i), **kwargs), copy))
        want_a = [c.collect(k) for (c, _), k in zip(references, [51, 50])]
        for _, copy in references:
            copy.set_weights(second)
        want_b = [c.collect(20) for c, _ in references]
        for got, want in (((obs_a, logits_a), want_a), ((obs_b, logits_b), want_b)):
            np.testing.assert_allclose(got[0], np.concatenate([w[0] for w in want]), rtol=1e-6)
            np.testing.assert_allclose(got[1], np.concatenate([w[1] for w in want]), rtol=1e-5, atol=1e-5)
        assert collector.steps == 141

        local_ray.kill(collector._workers[0])
        obs, logits = collector.collect(30)  # actor 0 is replaced: a new seed, the current weights
        assert obs.shape == (30, 4) and logits.shape == (30, 2) and collector.replacements == 1
        local_ray.kill(collector._workers[1])
        collector.max_replacements = 1
        with pytest.raises(ActorLostError, match="collection actor 1 died .* --resume"):
            collector.collect(10)
    finally:
        collector.close()
        for c, _ in references:
            c.close()


@pytest.mark.slow
def test_two_actors_distil_cartpole_to_the_teacher_even_when_one_is_killed(local_ray, cartpole_teacher, monkeypatch):
    """The one-process run's test (test_distill_live), on 2 actors; actor 1 is killed in round 3."""
    collectors, original = [], DistributedCollector.collect

    def collect_and_kill(self, num_steps):
        collectors.append(self)
        if self.steps == 1000:
            local_ray.kill(self._workers[1])
        return original(self, num_steps)

    monkeypatch.setattr(DistributedCollector, "collect", collect_and_kill)
    config = DistillConfig(steps=4000, eval_every=0, eval_episodes=10, seed=0, actors=2)
    _, metrics = distill_policy(cartpole_teacher, config, progress=False)
    assert collectors[0].replacements == 1
    assert metrics["actors"] == 2 and metrics["labelled_states"] == metrics["env_steps"] == 4000
    assert metrics["teacher_mean_return"] == 500.0 and metrics["student_mean_return"] >= 0.99 * 500.0
    assert metrics["agreement"] > 0.85


_MIRRORED_RUN = """
import json, sys
sys.path.insert(0, {tests!r})
import kd_rl
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from conftest import make_cartpole_teacher
from kd_rl.distill import DistillConfig, distill_policy
from kd_rl.models import TeacherModel
from kd_rl.multitask import MultiTaskConfig, distill_multitask

teacher = make_cartpole_teacher()
acrobot = TeacherModel(3, observation_dim=6, hidden_units=(16,), output_type="q_values")
runs, multi = {{}}, {{}}
for strategy in ("default", "mirrored"):
    config = DistillConfig(steps=1000, hidden_units=16, eval_every=0, eval_episodes=2, seed=3, strategy=strategy)
    student, metrics = distill_policy(teacher, config, progress=False)
    runs[strategy] = (student.get_weights(), metrics)
    config = MultiTaskConfig(
        env_ids=("CartPole-v1", "Acrobot-v1"), trunk_units=16, adapter_units=16, steps=500, eval_every=0,
        eval_episodes=1, updates_per_round=50, seed=3, strategy=strategy,
    )
    student, metrics = distill_multitask([teacher, acrobot], config, progress=False)
    multi[strategy] = (student.get_weights(), metrics)
def error(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))
from kd_rl.distributed import make_strategy
print("RESULT " + json.dumps({{
    "one_strategy": make_strategy("mirrored") is make_strategy("mirrored", ["/cpu:1", "/CPU:0"]),
    "replicas": [runs[s][1]["replicas"] for s in ("default", "mirrored")],
    "weight_error": error(runs["default"][0], runs["mirrored"][0]),
    "labelled": runs["mirrored"][1]["labelled_states"],
    "multi_replicas": [multi[s][1]["replicas"] for s in ("default", "mirrored")],
    "multi_weight_error": error(multi["default"][0], multi["mirrored"][0]),
    "multi_labelled": [t["labelled_states"] for t in multi["mirrored"][1]["tasks"]],
}}))
"""


def test_distill_policy_with_the_mirrored_strategy_runs_two_replicas_and_learns_the_same_weights(tmp_path):
    """Through distill_policy and distill_multitask: on two logical CPU devices, two replicas; weights equal a
    one-device run's."""
    script = tmp_path / "mirrored_run.py"
    script.write_text(_MIRRORED_RUN.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["replicas"] == [1, 2]
    assert result["labelled"] == 1000
    # 1000 states are 2 rounds of 100 Adam updates on [2 x 64]-state slices; float rounding differs, no more.
    assert result["weight_error"] < 1e-4
    # Multi-task, after the single-task mirrored run in the same process (one strategy per device set, so the
    # second run's all-reduces do not meet the first's): each task's batch of 64 split in two, one update of the
    # summed task losses, 50 updates a round.
    assert result["multi_replicas"] == [1, 2]
    assert result["multi_labelled"] == [500, 500]
    assert result["multi_weight_error"] < 1e-4
    assert result["one_strategy"]  # the same devices, however spelled: one strategy
