"""The imagination learner (trainimagination.py, utils/engine/imagine.py): its returns, its imagination
against the models stepped by hand, and the stage through its command line (one iteration, resume, refusals)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY, run_script
from tests.test_bad_input import refused, snapshot


def test_lambda_returns_by_hand():
    from utils.engine.imagine import lambda_returns

    rewards = torch.tensor([[1.0, 0.0], [2.0, -1.0]])  # r_1, r_2 of two trajectories
    values = torch.tensor([[0.0, 5.0], [10.0, 1.0], [20.0, 3.0]])  # v(s_0), v(s_1), v(s_2)
    gamma, lam = 0.5, 0.5
    # R_1 = r_2 + gamma v_2 (the last step bootstraps from v(s_H)); R_0 = r_1 + gamma ((1 - lam) v_1 + lam R_1)
    r1 = [2 + 0.5 * 20, -1 + 0.5 * 3]
    r0 = [1 + 0.5 * (0.5 * 10 + 0.5 * r1[0]), 0 + 0.5 * (0.5 * 1 + 0.5 * r1[1])]
    assert torch.allclose(lambda_returns(rewards, values, gamma, lam), torch.tensor([r0, r1]))
    # lam = 1: the discounted sum of rewards plus the discounted last value; lam = 0: one-step TD targets
    by_sum = rewards[0] + 0.9 * rewards[1] + 0.81 * values[2]
    assert torch.allclose(lambda_returns(rewards, values, 0.9, 1.0)[0], by_sum)
    assert torch.allclose(lambda_returns(rewards, values, 0.9, 0.0), rewards + 0.9 * values[1:])


def random_replay(episodes=4, steps=60, seed=0):
    from utils.constants import ASIZE, LSIZE
    from utils.engine.imagine import Replay

    rng = np.random.default_rng(seed)
    replay = Replay()
    for _ in range(episodes):
        replay.add(rng.normal(size=(steps, 2 * LSIZE)).astype(np.float32) * 0.5,
                   rng.uniform(-1, 1, (steps, ASIZE)).astype(np.float32), rng.normal(size=steps).astype(np.float32),
                   np.zeros(steps, np.float32))
    return replay


def test_the_entropy_of_the_actions_is_that_of_their_histogram():
    """GaussianActor.entropy given samples: steer (tanh) and gas ((tanh + 1) / 2) measured on a fine histogram
    of the squashed samples, the brake's raw Gaussian entropy beside them; and where tanh saturates, widening
    the raw std widens the actions less, so the bonus's pull on the std is weaker than the raw entropy's (1).
    Without the brake (--entropy-of steer-gas), steer's and gas's alone, and no pull on the brake's std."""
    from utils.engine.imagine import GaussianActor

    torch.manual_seed(0)
    actor = GaussianActor(std=0.8)
    with torch.no_grad():
        actor.controller.fc.bias.copy_(torch.tensor([1.5, 1.5, 0.0]))
    features = torch.zeros(200_000, actor.controller.fc.in_features)
    with torch.no_grad():
        raws, actions = actor.sample(features)

    def histogram_entropy(x, low, high, bins=2000):
        counts, edges = np.histogram(x, bins=bins, range=(low, high))
        p = counts[counts > 0] / counts.sum()
        return -(p * np.log(p / (edges[1] - edges[0]))).sum()

    brake = 0.5 + 0.5 * np.log(2 * np.pi) + np.log(0.8)
    measured = histogram_entropy(actions[:, 0].numpy(), -1, 1) + histogram_entropy(actions[:, 1].numpy(), 0, 1)
    entropy = actor.entropy(features, raws)
    assert entropy.item() == pytest.approx(measured + brake, abs=0.02)
    entropy.backward()
    assert (actor.log_std.grad[:2] < 0.7).all() and float(actor.log_std.grad[2]) == pytest.approx(1.0)
    # --entropy-of steer-gas: the same without the brake, which the bonus then leaves alone
    actor.log_std.grad = None
    steer_gas = actor.entropy(features, raws, brake=False)
    assert steer_gas.item() == pytest.approx(measured, abs=0.02)
    steer_gas.backward()
    assert (actor.log_std.grad[:2] < 0.7).all() and float(actor.log_std.grad[2]) == 0.0


def test_the_bonus_without_the_brake_leaves_the_brakes_std_to_the_returns():
    """actor_critic_losses with --entropy-of steer-gas: the brake's log-std gets the same gradient as with no
    bonus at all (the returns' alone); with --entropy-of action it gets the raw entropy's pull on top, and steer
    and gas get the same pull in both."""
    from utils.constants import ASIZE, LSIZE, RSIZE
    from utils.engine.imagine import Critic, GaussianActor, ReturnScale, actor_critic_losses

    torch.manual_seed(0)
    features = torch.randn(4, 16, LSIZE + RSIZE)  # (H + 1, B, features)
    raws, rewards = torch.randn(3, 16, ASIZE), torch.randn(3, 16)
    grads = {}
    for entropy_of, scale in (("action", 0.5), ("steer-gas", 0.5), ("steer-gas", 0.0)):
        actor = GaussianActor(std=0.8)
        _, loss, _ = actor_critic_losses(actor, Critic(16), ReturnScale(), features, raws, rewards, 0.99, 0.95,
                                         scale, entropy_of)
        loss.backward()
        grads[entropy_of, scale] = actor.log_std.grad.clone()
    assert grads["steer-gas", 0.5][2] == pytest.approx(grads["steer-gas", 0.0][2].item(), abs=1e-6)
    assert grads["action", 0.5][2] == pytest.approx(grads["steer-gas", 0.0][2].item() - 0.5, abs=1e-6)
    assert torch.allclose(grads["action", 0.5][:2], grads["steer-gas", 0.5][:2], atol=1e-6)
    assert not torch.allclose(grads["steer-gas", 0.5][:2], grads["steer-gas", 0.0][:2], atol=1e-3)


def test_replay_sequences_pair_frames_with_the_next_action():
    """A sequence at t: frames t .. t+L-1 with actions t+1 .. t+L (the rollout format: frame t follows action t),
    inside one episode."""
    replay = random_replay()
    rng = np.random.default_rng(1)
    stats, actions, rewards, terminated, next_stats = replay.sequences(rng, 64, 8)
    assert stats.shape == (8, 64, 64) and actions.shape == (8, 64, 3) and next_stats.shape == stats.shape
    for b in range(64):
        t = int(np.flatnonzero((replay.stats == stats[0, b].numpy()).all(1))[0])
        assert t + 8 < replay.end[t]
        assert np.array_equal(actions[:, b].numpy(), replay.actions[t + 1:t + 9])
        assert np.array_equal(next_stats[:, b].numpy(), replay.stats[t + 1:t + 9])


def test_replay_starts_carry_the_real_past_that_led_there():
    """A start at frame g of an episode: its past is the pushes (action g-n+1, frame g-n) .. (action g, frame
    g-1), as the rollout generator made them (the action after frame j is action j+1), n = min(past, steps of
    the episode before g); z0 is frame g's latent mean."""
    replay = random_replay(steps=20)
    past_len, actions, latents, z0 = replay.starts(np.random.default_rng(2), 200, 6)
    mu = replay.stats[:, :32]
    for b in range(200):
        g = int(np.flatnonzero((mu == z0[b].numpy()).all(1))[0])
        n = int(past_len[b])
        assert n == min(6, g - replay.first[g])
        assert np.array_equal(latents[:n, b].numpy(), mu[g - n:g])
        assert np.array_equal(actions[:n, b].numpy(), replay.actions[g - n + 1:g + 1])
    assert (past_len == 0).any() and (past_len == 6).any()


@pytest.mark.parametrize("dynamics", ["mdrnn", "trade"])
def test_imagination_equals_the_model_stepped_by_hand(dynamics):
    """warm_starts + imagine give, at every imagined step, the hidden state and reward that the full-sequence
    model computes on [real past, imagined steps] (the transformer: on its last `context` steps), and the
    latents the mixture gives with the same noise."""
    from models.dynamics import build_dynamics
    from models.mdrnn import sample_mixture
    from models.controller import squash
    from utils.engine.imagine import GaussianActor, imagine, warm_starts

    torch.manual_seed(0)
    model = build_dynamics(dynamics).eval()
    replay = random_replay()
    past, horizon, batch, context = 6, 4, 16, 8
    past_len, actions, latents, z0 = replay.starts(np.random.default_rng(3), batch, past)
    actor = GaussianActor(std=0.3)
    torch.nn.init.normal_(actor.controller.fc.weight, std=0.1)
    stepper = model.stepper(batch, context) if dynamics != "mdrnn" else model.stepper(batch)
    warm_starts(stepper, past_len, actions, latents)
    gen = torch.Generator().manual_seed(5)
    features, raws, rewards = imagine(model, stepper, actor, z0, horizon, temperature=1.0, generator=gen)
    assert features.shape == (horizon + 1, batch, 32 + 256) and raws.shape == (horizon, batch, 3)

    # the same noise, drawn in imagine's order, to recompute the sampled latents
    gen = torch.Generator().manual_seed(5)
    noise = []
    for _ in range(horizon):
        torch.randn(batch, 3, generator=gen)  # the actor's draw (its samples are in raws)
        noise.append((torch.rand(batch, generator=gen), torch.randn(batch, 32, generator=gen)))
    with torch.no_grad():
        for b in range(batch):
            n = int(past_len[b])
            seq_a, seq_z = list(actions[:n, b]), list(latents[:n, b])
            z = z0[b]
            for k in range(horizon):
                assert torch.allclose(features[k, b, :32], z, atol=1e-5)
                a = squash(raws[k, b])
                seq_a.append(a)
                seq_z.append(z)
                window = slice(-context, None) if dynamics != "mdrnn" else slice(None)
                out = model(torch.stack(seq_a[window])[:, None], torch.stack(seq_z[window])[:, None])
                h = out[-1][-1, 0]
                assert torch.allclose(features[k + 1, b, 32:], h, atol=1e-4), (b, k)
                assert torch.allclose(rewards[k, b], out[3][-1, 0], atol=1e-4)
                z = sample_mixture(out[0][-1], out[1][-1], out[2][-1], 1.0, noise[k][0][b:b + 1],
                                   noise[k][1][b:b + 1])[0]
    assert (past_len < past).any() and (past_len == past).any()  # both kinds of start were checked
    # noise 0: the actor's mean, with the model's own draws as they were (the actor's noise is drawn all the same)
    warm_starts(stepper, past_len, actions, latents)
    mean_features, mean_raws, _ = imagine(model, stepper, actor, z0, horizon, 1.0, torch.Generator().manual_seed(5),
                                          std_scale=0.0)
    torch.testing.assert_close(mean_raws, actor.mean(mean_features[:-1]))
    torch.testing.assert_close(mean_features[0], features[0])  # the same starts
    assert not torch.allclose(mean_raws, raws)


@pytest.mark.parametrize("dynamics", ["mdrnn", "transformer"])
def test_the_critics_real_targets_are_the_lambda_returns_of_real_rewards(dynamics):
    """real_value_loss on a Replay.sequences batch: the states are [z, h] at frames t+1 .. t+L, h the model
    stepped by hand over the window from a fresh state; the targets are the real rewards' lambda-returns,
    bootstrapped from the slow critic, from 0 where the episode terminated at the window's end."""
    from models.dynamics import build_dynamics
    from utils.engine.imagine import Critic, real_value_loss

    torch.manual_seed(0)
    model = build_dynamics(dynamics).eval()
    critic = Critic(units=16)
    for p in [*critic.target.parameters(), *critic.net[-1].parameters()]:  # critics that say something, and
        torch.nn.init.normal_(p, std=0.3)  # not the same thing (new ones say 0 everywhere)
    seq_len, batch, gamma, lam = 5, 6, 0.9, 0.8
    stats, actions, rewards, terminated, next_stats = random_replay().sequences(np.random.default_rng(4), batch,
                                                                                 seq_len)
    terminated[-1, :2] = 1.0  # two windows end where their episode ended by itself
    loss, mean_return = real_value_loss(model, critic, (stats, actions, rewards, terminated, next_stats), gamma,
                                        lam, "cpu")
    targets, values = [], []
    with torch.no_grad():
        for b in range(batch):
            stepper = model.stepper(1, seq_len) if dynamics != "mdrnn" else model.stepper(1)
            states = []
            for k in range(seq_len):
                stepper.push(actions[k, b][None], stats[k, b, :32][None])
                states.append(torch.cat([next_stats[k, b, :32], stepper.hidden[0]]))
            slow = [critic.slow(s).item() for s in states]
            if terminated[-1, b]:
                slow[-1] = 0.0  # nothing follows the end of an episode
            ret, column = slow[-1], []
            for k in reversed(range(seq_len - 1)):
                ret = rewards[k + 1, b].item() + gamma * ((1 - lam) * slow[k + 1] + lam * ret)
                column.append(ret)
            targets.append(column[::-1])
            values.append([critic(s).item() for s in states[:-1]])
    targets, values = torch.tensor(targets), torch.tensor(values)
    assert loss.item() == pytest.approx((0.5 * (values - targets) ** 2).mean().item(), rel=1e-4)
    assert mean_return.item() == pytest.approx(targets[:, 0].mean().item(), rel=1e-4, abs=1e-5)
    loss.backward()  # the loss moves the critic, not its slow copy nor the model
    assert critic.net[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in [*critic.target.parameters(), *model.parameters()])


def small_learner(tmp_path, *flags):
    """A Learner of tiny settings on random_replay(), and its imagination stepper."""
    from utils.stages.imagination import Learner, parse_config

    config = parse_config("mdrnn", ["--logdir", str(tmp_path), "--critic-units", "16", "--imag-batch", "8",
                                    "--horizon", "3", "--batch-size", "4", "--seq-len", "5", "--past", "5", *flags])
    learner = Learner(config, "mdrnn", "cpu")
    learner.replay = random_replay()
    return learner, learner.model.stepper(config.imag_batch)


def test_the_real_value_weight_moves_the_critic_and_nothing_else(tmp_path):
    """One update from the same state, with and without --real-value-weight: the same actor (the imagination
    batch is drawn first, the same in both), another critic."""
    runs = []
    for weight in ("0", "0.3"):
        torch.manual_seed(0)  # the same models in both
        learner, stepper = small_learner(tmp_path, "--real-value-weight", weight)
        torch.nn.init.normal_(learner.critic.net[-1].weight, std=0.3)  # a critic whose errors move it
        torch.manual_seed(1)  # the same imagination in both
        runs.append((learner, learner.train_actor_critic(1, stepper)))
    (without, metrics_without), (with_real, metrics_with) = runs
    for key, value in without.actor.state_dict().items():
        assert torch.equal(value, with_real.actor.state_dict()[key]), key
    assert metrics_without["imagined_return"] == metrics_with["imagined_return"]
    assert not torch.equal(without.critic.net[-1].weight, with_real.critic.net[-1].weight)
    assert "real_value_loss" not in metrics_without and metrics_with["real_value_loss"] > 0


def test_the_judge_rates_the_policy_and_its_mean_with_numbers_of_its_own(tmp_path):
    """Learner.judge: the same numbers when asked twice, the run's random streams untouched, and another
    rating for the mean than for the sampled policy."""
    torch.manual_seed(0)
    learner, stepper = small_learner(tmp_path)
    torch.nn.init.normal_(learner.actor.controller.fc.weight, std=0.1)
    torch.nn.init.normal_(learner.critic.target[-1].weight, std=0.3)
    rng_state, torch_state = learner.rng.bit_generator.state, torch.get_rng_state()
    first, second = learner.judge(stepper), learner.judge(stepper)
    assert first == second and first["sampled"] != first["mean"]
    assert learner.rng.bit_generator.state == rng_state and torch.equal(torch.get_rng_state(), torch_state)


def test_the_judge_at_a_longer_horizon_and_without_the_critic(tmp_path):
    """judge(horizon=H, critic=False) is the discounted sum of the rewards the model imagines over H steps, from
    the same starts and draws as the rating at the run's horizon; with the critic at the run's horizon it is that
    rating."""
    from utils.engine.imagine import imagine, warm_starts

    torch.manual_seed(0)
    learner, stepper = small_learner(tmp_path)
    torch.nn.init.normal_(learner.actor.controller.fc.weight, std=0.1)
    torch.nn.init.normal_(learner.model.head.linear.weight, std=0.3)  # rewards that differ from step to step
    torch.nn.init.normal_(learner.critic.target[-1].weight, std=0.3)
    c = learner.config
    rated = learner.judge(stepper, batches=1, horizon=7, critic=False)
    with_critic = learner.judge(stepper, batches=1, horizon=7)
    rng = np.random.default_rng([c.seed, 8, learner.iteration])  # the judge's own numbers, by hand
    past_len, actions, latents, z0 = learner.replay.starts(rng, c.imag_batch, c.past)
    seed = int(rng.integers(2**31))
    for name, std_scale in (("sampled", 1.0), ("mean", 0.0)):
        warm_starts(stepper, past_len, actions, latents)
        features, _, rewards = imagine(learner.model, stepper, learner.actor, z0, 7, c.temperature,
                                       torch.Generator().manual_seed(seed), std_scale)
        discounts = c.gamma ** torch.arange(7.0)
        assert rated[name] == pytest.approx((discounts[:, None] * rewards).sum(0).mean().item(), rel=1e-5)
        values = learner.critic.slow(features)
        target = values[-1]  # R_H = v_H; R_t = r_t+1 + gamma ((1 - lam) v_t+1 + lam R_t+1)
        for t in reversed(range(7)):
            target = rewards[t] + c.gamma * ((1 - c.lam) * values[t + 1] + c.lam * target)
        assert with_critic[name] == pytest.approx(target.mean().item(), rel=1e-5)
    assert rated["sampled"] != rated["mean"] and rated != with_critic


IMAGINATION = ["--envs", 2, "--time-limit", 20, "--pretrain", 2, "--train-ratio", 2, "--batch-size", 4,
               "--seq-len", TINY["seq_len"], "--past", TINY["seq_len"], "--imag-batch", 8, "--horizon", 3,
               "--eval-every", 1, "--eval-episodes", 1, "--critic-units", 16]


@pytest.fixture(scope="module")
def imagination_logdir(tmp_path_factory, mdrnn_logdir):
    logdir = tmp_path_factory.mktemp("imagination") / "exp"
    shutil.copytree(mdrnn_logdir, logdir, ignore=shutil.ignore_patterns("ctrl", "test_sample*", "test_scores*"))
    return logdir


def test_one_iteration_through_the_command_line_then_a_test(imagination_logdir, tiny_data, tmp_path):
    """One iteration: real episodes in the replay, the counts recorded, an agent folder that
    test_controller.py scores, and the report's row from the records."""
    run_script("world-models/trainimagination.py", "--logdir", imagination_logdir, "--datadir", tiny_data,
               "--max-iterations", 1, *IMAGINATION)
    root = imagination_logdir / "imagination"
    record = json.loads((root / "record.json").read_text())
    steps = record["real_steps"]
    assert steps["data"] == TINY["rollouts"] * TINY["steps"]
    assert 0 < steps["collected"] <= 2 * 20 and 0 < steps["evaluation"] <= 20
    assert steps["total"] == steps["data"] + steps["collected"] + steps["evaluation"]
    assert record["config"]["horizon"] == 3 and record["iterations"] == 1
    assert len(record["history"][0]["train_returns"]) == 2 and len(record["history"][0]["eval_returns"]) == 1
    assert record["history"][0]["reward_var"] > 0  # beside reward_mse: the reward fit's R^2 on the replay
    assert "real_return" not in record["history"][0] and record["config"]["real_value_weight"] == 0  # off by default
    judged = record["history"][0]["judged"]  # the model's rating of the actor sampled and of its mean
    assert set(judged) == {"sampled", "mean"} and all(np.isfinite(v) for v in judged.values())
    replayed = sorted((root / "replay" / "thread_0").glob("rollout_*.npz"))
    assert len(replayed) == 2
    state = torch.load(root / "ctrl" / "best.tar", weights_only=True)
    assert state["config"] == record["config"]  # the whole configuration with the controller
    assert torch.load(root / "checkpoint.tar", weights_only=True)["config"] == record["config"]
    run_script("world-models/test_controller.py", "--logdir", root, "--episodes", 2, "--time-limit", 20,
               "--no-video", "--max-workers", 1)
    test = json.loads((root / "test_scores.json").read_text())
    assert test["episodes"] == 2 and test["policy_std"] is None
    # the policy it learned, sampled with the std saved beside its mean: its own file, the same returns with or
    # without the video (the noise comes from each episode's seed), other returns than the mean's
    assert state["policy_std"] == pytest.approx(record["history"][-1]["std"])
    sampled = []
    for video in ([], ["--no-video"]):
        run_script("world-models/test_controller.py", "--logdir", root, "--episodes", 2, "--time-limit", 120,
                   "--max-workers", 1, "--envs-per-worker", 2, "--sampled", *video)
        sampled.append(json.loads((root / "test_scores_sampled.json").read_text()))
    assert sampled[0]["returns"] == sampled[1]["returns"] and sampled[0]["policy_std"] == state["policy_std"]
    before = snapshot(root)
    refused("world-models/test_controller.py", "--logdir", root, "--episodes", 2, "--sampled", "--action-noise", 0.1,
            expect="is played with its own policy's noise; drop --action-noise 0.1")
    assert snapshot(root) == before
    run_script("world-models/test_controller.py", "--logdir", root, "--episodes", 2, "--time-limit", 120,
               "--max-workers", 1, "--envs-per-worker", 2, "--no-video")
    assert json.loads((root / "test_scores.json").read_text())["returns"] != sampled[0]["returns"]
    test = json.loads((root / "test_scores.json").read_text())
    run_script("utils/stages/imagination_report.py", "--runs", root, "--out", tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"| MDN-RNN | 0 | - | 1 | {steps['total']:,} ({steps['data']:,} + {steps['collected']:,} + " in report
    assert f"{test['mean']:.1f} +- {test['std']:.1f}" in report
    assert f"| [{sampled[0]['mean']:.1f} +- {sampled[0]['std']:.1f}](../" in report  # the sampled policy's column
    assert all((tmp_path / "report" / f).stat().st_size > 0 for f in ("sample_efficiency.png", "imagined_vs_real.png"))
    assert "| iterations | MDN-RNN, seed 0 |\n|---|---|\n| 0 | " in report  # the blocks table: one iteration
    fit = 1 - record["history"][0]["reward_mse"] / record["history"][0]["reward_var"]
    assert f", reward R^2 {fit:.2f})" in report
    before = snapshot(tmp_path / "report")
    refused("utils/stages/imagination_report.py", "--runs", root, "--out", tmp_path / "report", "--block", 0,
            expect="--block 0: give a number of iterations, 1 or more")
    assert snapshot(tmp_path / "report") == before
    # what its replay holds: the reward fit's R^2 against the variance of the rewards its training windows draw
    # (each counted once per window that holds it), and the actions played
    run_script("utils/stages/replay_measures.py", "--run", root, "--datadir", tiny_data, "--out", tmp_path / "m.json")
    row = json.loads((tmp_path / "m.json").read_text())["rows"][0]
    seq_len = record["config"]["seq_len"]  # every training window's rewards, listed one window at a time
    windows = np.concatenate([r[s + 1:s + seq_len + 1] for f in [*Path(tiny_data).rglob("rollout_*.npz"), *replayed]
                              for r in [np.load(f)["rewards"]] for s in range(len(r) - seq_len)])
    assert row["replay_reward_var"] == pytest.approx(windows.var(), rel=1e-5)
    assert row["r2"] == pytest.approx(1 - record["history"][0]["reward_mse"] / windows.var(), rel=1e-5)
    played = np.concatenate([np.load(f)["actions"] for f in replayed])
    assert row["played_gas"] == pytest.approx(played[:, 1].mean(), rel=1e-5)
    refused("utils/stages/replay_measures.py", "--run", root, "--datadir", root / "replay", "--out",
            tmp_path / "n.json", expect=f"--datadir {root / 'replay'}: not the rollouts this run's replay started from")
    assert not (tmp_path / "n.json").exists()
    # the model's rating of the last actor, sampled and mean, recomputed from the checkpoint as the run made it
    run_script("utils/stages/imagination.py", "--run", root, "--datadir", tiny_data, "--out", tmp_path / "j.json",
               "--horizons", 3, 6)
    judged = json.loads((tmp_path / "j.json").read_text())
    assert judged["judged"] == judged["recorded"] == record["history"][-1]["judged"]
    assert [row["horizon"] for row in judged["horizons"]] == [3, 6]
    assert judged["horizons"][0]["lambda_return"] == judged["judged"]  # 3: the run's own horizon
    assert judged["horizons"][1]["model_rewards"] != judged["horizons"][0]["model_rewards"]
    refused("utils/stages/imagination.py", "--run", root, "--datadir", tiny_data, "--out", tmp_path / "k.json",
            "--horizons", 15, 0, expect="--horizons 15 0: give numbers of steps, 1 or more")
    refused("utils/stages/imagination.py", "--run", tmp_path, "--datadir", tiny_data, "--out",
            tmp_path / "k.json", expect=f"--run {tmp_path}: no checkpoint.tar")
    refused("utils/stages/imagination.py", "--run", root, "--datadir", root / "replay", "--out", tmp_path / "k.json",
            expect=f"--datadir {root / 'replay'}: not the rollouts this run's replay started from")
    assert not (tmp_path / "k.json").exists()


def test_the_mlp_actor_is_learned_saved_and_played_in_reality_as_its_shape(imagination_logdir, tiny_data, tmp_path):
    """--actor mlp: the controller shape zh-hidden (a tanh layer between [z, h] and the outputs) trains, is
    saved as that shape, and test_controller.py plays it as the actor's mean."""
    from models.controller import Controller, n_params
    from utils.engine.imagine import GaussianActor

    actor = GaussianActor(inputs="zh-hidden")
    features = torch.randn(5, 288)
    torch.testing.assert_close(actor.mean(features), actor.controller.fc(torch.tanh(actor.controller.hidden(features))))
    logdir = tmp_path / "exp"  # a run of its own: the module's logdir holds another's
    shutil.copytree(imagination_logdir, logdir, ignore=shutil.ignore_patterns("imagination", "ctrl", "test_*"))
    run_script("world-models/trainimagination.py", "--logdir", logdir, "--datadir", tiny_data,
               "--max-iterations", 1, "--actor", "mlp", "--reward-weight", 10, *IMAGINATION)
    root = logdir / "imagination"
    state = torch.load(root / "ctrl" / "best.tar", weights_only=True)
    assert state["controller_inputs"] == "zh-hidden" and len(state["params"]) == n_params("zh-hidden") == 11683
    assert state["config"]["actor"] == "mlp" and state["config"]["reward_weight"] == 10
    assert state["params"][:n_params("zh-hidden") - 123].abs().sum() > 0  # the hidden layer is not the zeros of fc
    controller = Controller("zh-hidden")
    controller.load_state_dict(state["model"])
    assert torch.equal(torch.cat([p.flatten() for p in controller.parameters()]), state["params"].float())
    run_script("world-models/test_controller.py", "--logdir", root, "--episodes", 1, "--time-limit", 20,
               "--no-video", "--max-workers", 1)
    test = json.loads((root / "test_scores.json").read_text())
    assert test["controller_inputs"] == "zh-hidden" and test["episodes"] == 1


def test_the_critic_learns_real_returns_too_when_asked(imagination_logdir, tiny_data, tmp_path):
    """--real-value-weight: the critic's second loss, on real replay sequences, is taken, logged and recorded
    with the run (without it, none: test_one_iteration_through_the_command_line_then_a_test)."""
    logdir = tmp_path / "exp"  # a run of its own: the module's logdir holds another's
    shutil.copytree(imagination_logdir, logdir, ignore=shutil.ignore_patterns("imagination", "ctrl", "test_*"))
    run_script("world-models/trainimagination.py", "--logdir", logdir, "--datadir", tiny_data,
               "--max-iterations", 1, "--real-value-weight", 0.3, *IMAGINATION)
    record = json.loads((logdir / "imagination" / "record.json").read_text())
    entry = record["history"][0]
    assert record["config"]["real_value_weight"] == 0.3
    assert entry["real_value_loss"] > 0 and np.isfinite(entry["real_return"])
    from utils.engine.training import read_scalars

    tags = set(read_scalars(logdir / "imagination" / "tb")[0])
    assert {"losses/real_value_loss", "charts/real_return"} <= tags


def test_the_reward_weight_scales_the_reward_term_of_the_model_loss():
    from models.mdrnn import dynamics_loss

    g = torch.Generator().manual_seed(0)
    outputs = (torch.randn(4, 2, 5, 32, generator=g), torch.rand(4, 2, 5, 32, generator=g) + 0.5,
               torch.log_softmax(torch.randn(4, 2, 5, generator=g), -1), torch.randn(4, 2, generator=g),
               torch.randn(4, 2, generator=g))
    args = (torch.randn(4, 2, 32, generator=g), torch.randn(4, 2, generator=g), torch.zeros(4, 2), True)
    one, ten = dynamics_loss(outputs, *args), dynamics_loss(outputs, *args, reward_weight=10.0)
    torch.testing.assert_close(ten["loss"] - one["loss"], 9 * one["mse"] / 34)
    assert torch.equal(ten["mse"], one["mse"]) and torch.equal(ten["gmm"], one["gmm"])


def test_a_stopped_run_continues_as_one_that_never_stopped(tmp_path, mdrnn_logdir, tiny_data):
    """Two iterations in one go, or one then a rerun: the same actor, critic, model and replay."""
    runs = {}
    for name, stops in (("once", [2]), ("resumed", [1, 2])):
        logdir = tmp_path / name
        shutil.copytree(mdrnn_logdir, logdir, ignore=shutil.ignore_patterns("ctrl", "test_sample*", "test_scores*"))
        for stop in stops:
            proc = run_script("world-models/trainimagination.py", "--logdir", logdir, "--datadir", tiny_data,
                              "--max-iterations", stop, *IMAGINATION)
        runs[name] = torch.load(logdir / "imagination" / "checkpoint.tar", weights_only=True)
    assert "resuming" in proc.stdout
    once, resumed = runs["once"], runs["resumed"]
    assert once["iteration"] == resumed["iteration"] == 2 and once["replay_files"] == resumed["replay_files"] == 4
    for part in ("actor", "critic", "model"):
        for key in once[part]:
            assert torch.equal(once[part][key], resumed[part][key]), (part, key)
    assert once["steps"] == resumed["steps"]
    # each start that ran logged its provenance; a rerun of the finished run does nothing and logs none
    from utils.engine.training import read_texts

    tb = tmp_path / "resumed" / "imagination" / "tb"
    assert len(read_texts(tb, "provenance")) == 2
    rerun = f"{tmp_path / 'resumed'}/"  # the same folder, in another command line
    proc = run_script("world-models/trainimagination.py", "--logdir", rerun, "--datadir", tiny_data,
                      "--max-iterations", 2, *IMAGINATION)
    assert "2 iterations" in proc.stdout and len(read_texts(tb, "provenance")) == 2
    # the record names each start: where it began, its command and commit
    starts = json.loads((tmp_path / "resumed" / "imagination" / "record.json").read_text())["starts"]
    from utils.engine.training import read_scalars

    first = read_scalars(tb)[0]["charts/real_steps"][0][1]  # where the first iteration left the run
    assert [(s["iteration"], s["real_steps"]) for s in starts] == [(0, resumed["steps"]["data"]), (1, first)]
    assert all("trainimagination.py" in s["command"] and "machine" in s for s in starts)
    record = json.loads((tmp_path / "resumed" / "imagination" / "record.json").read_text())
    assert record["command"] == starts[-1]["command"] and rerun not in record["command"]  # the rerun ran nothing


def test_bad_input_is_refused_in_one_line_and_writes_nothing(imagination_logdir, tiny_data):
    for args, expect in ((["--horizon", 0], "--horizon 0: must be > 0"),
                         (["--gamma", 1.5], "--gamma 1.5: must be in"),
                         (["--context", 8], "--context 8: is the transformers' window"),
                         (["--min-std", 0.9], "--min-std 0.9: must be at most --init-std 0.5"),
                         (["--datadir", imagination_logdir / "nowhere"], "no such folder")):
        before = snapshot(imagination_logdir)
        refused("world-models/trainimagination.py", "--logdir", imagination_logdir, "--datadir", tiny_data, *args,
                expect=expect)
        assert snapshot(imagination_logdir) == before


def test_a_resume_with_other_settings_is_refused(imagination_logdir, tiny_data):
    """A recorded run (test_one_iteration... made it) continued with another --seed or --horizon: refused,
    naming the flag and its recorded value; nothing written."""
    if not (imagination_logdir / "imagination" / "checkpoint.tar").exists():
        run_script("world-models/trainimagination.py", "--logdir", imagination_logdir, "--datadir", tiny_data,
                   "--max-iterations", 1, *IMAGINATION)
    before = snapshot(imagination_logdir)
    refused("world-models/trainimagination.py", "--logdir", imagination_logdir, "--datadir", tiny_data,
            "--max-iterations", 2, *IMAGINATION, "--seed", 3, expect="made with --seed 0, not 3")
    args = list(IMAGINATION)
    args[args.index("--horizon") + 1] = 5
    refused("world-models/trainimagination.py", "--logdir", imagination_logdir, "--datadir", tiny_data,
            "--max-iterations", 2, *args, expect="made with --horizon 3, not 5")
    assert snapshot(imagination_logdir) == before


def test_mean_episodes_play_the_actors_mean_and_join_the_replay(imagination_logdir, tiny_data, tmp_path):
    """--mean-episodes 1 of --envs 2: one episode samples the policy, one plays its mean alone (the actions the
    first actor's mean takes on that track, replayed here by hand); both are in the replay and counted, and
    the record keeps their returns apart."""
    from utils.engine.models_io import load_dynamics, load_vae
    from utils.engine.rollout import RolloutGenerator
    from utils.engine.rollout_cli import TRAIN_SEED_STREAM, episode_seeds
    from utils.engine.training import seed_everything
    from utils.stages.imagination import Learner, parse_config, play

    logdir = tmp_path / "exp"  # a run of its own: the module's logdir holds another's
    shutil.copytree(imagination_logdir, logdir, ignore=shutil.ignore_patterns("imagination", "ctrl", "test_*"))
    flags = ["--logdir", logdir, "--datadir", tiny_data, "--max-iterations", 1, "--mean-episodes", 1, *IMAGINATION]
    run_script("world-models/trainimagination.py", *flags)
    root = logdir / "imagination"
    record = json.loads((root / "record.json").read_text())
    entry = record["history"][0]
    assert record["config"]["mean_episodes"] == 1
    assert len(entry["train_returns"]) == 1 and len(entry["mean_returns"]) == 1
    played = [np.load(root / "replay" / "thread_0" / f"rollout_{i}.npz") for i in range(2)]
    assert record["real_steps"]["collected"] == sum(len(r["actions"]) for r in played)
    assert entry["mean_returns"][0] == pytest.approx(played[1]["rewards"].sum())
    # the first actor, as the run built it, plays its mean on the second track by hand
    config = parse_config("mdrnn", [str(f) for f in flags])
    seed_everything(config.seed)
    learner = Learner(config, "mdrnn", "cpu")
    vae, _ = load_vae(logdir / "vae" / "best.tar")
    learner.model.load_state_dict(load_dynamics(logdir / "mdrnn" / "best.tar", "mdrnn")[1]["model"])
    generator = RolloutGenerator(vae, learner.model, 1, "cpu", config.time_limit)
    seed = episode_seeds(config.seed, TRAIN_SEED_STREAM, 0, 2)[1]
    by_hand = play(generator, learner, [seed], noisy=False)[0]
    np.testing.assert_allclose(np.asarray(by_hand["actions"]), played[1]["actions"], atol=1e-6)
    sampled = play(generator, learner, [episode_seeds(config.seed, TRAIN_SEED_STREAM, 0, 2)[0]], noisy=True)[0]
    np.testing.assert_allclose(np.asarray(sampled["actions"]), played[0]["actions"], atol=1e-6)
    # the replay's measures count both episodes in the replay, and the sampled one alone in what was played
    run_script("utils/stages/replay_measures.py", "--run", root, "--datadir", tiny_data, "--out", tmp_path / "m.json")
    row = json.loads((tmp_path / "m.json").read_text())["rows"][0]
    assert row["played_gas"] == pytest.approx(played[0]["actions"][:, 1].mean(), rel=1e-5)
    from utils.stages.replay_measures import weighted_sums

    sums = sum(weighted_sums(r, record["config"]["seq_len"])
               for r in [*(np.load(f)["rewards"] for f in Path(tiny_data).rglob("rollout_*.npz")),
                         played[0]["rewards"], played[1]["rewards"]])
    assert row["replay_reward_var"] == pytest.approx(sums[2] / sums[0] - (sums[1] / sums[0]) ** 2, rel=1e-5)
    run_script("utils/stages/imagination_report.py", "--runs", root, "--out", tmp_path / "report")
    assert f", the mean's episodes {entry['mean_returns'][0]:.1f})" in (tmp_path / "report" / "report.md").read_text()
    before = snapshot(logdir)
    refused("world-models/trainimagination.py", *flags[:-len(IMAGINATION)], *IMAGINATION, "--mean-episodes", 2,
            "--noreload", expect="--mean-episodes 2: must be below --envs 2")
    assert snapshot(logdir) == before
    # near the budget, the last episode samples the policy: room for one episode after the starting data
    run_script("world-models/trainimagination.py", *flags, "--noreload", "--max-real-steps",
               TINY["rollouts"] * TINY["steps"] + 20, "--eval-every", 0)
    entry = json.loads((root / "record.json").read_text())["history"][0]
    assert len(entry["train_returns"]) == 1 and "mean_returns" not in entry


def test_settings_that_cannot_work_are_refused_before_anything_is_written(imagination_logdir, tiny_data):
    """An evaluation larger than the envs that play it, a std past the squash's reach, starting rollouts
    shorter than a training sequence: one line each, before any file is written."""
    for args, expect in ((["--eval-episodes", 3], "--eval-episodes 3: must be at most --envs 2"),
                         (["--init-std", 2.0], "--init-std 2.0: must be at most 1.5"),
                         (["--seq-len", 60], "no rollout is longer than --seq-len 60")):
        before = snapshot(imagination_logdir)
        refused("world-models/trainimagination.py", "--logdir", imagination_logdir, "--datadir", tiny_data,
                *IMAGINATION, *args, expect=expect)
        assert snapshot(imagination_logdir) == before


def test_an_action_held_several_steps_from_the_data_to_the_test(imagination_logdir, tiny_data, tmp_path):
    """--action-repeat 2: the starting data and the played episodes enter the replay one step per action (frames
    the last of each 2, rewards summed), real steps count env steps, the updates follow the replay's new steps,
    and the controller keeps the repeat, which test_controller.py plays. Starting rollouts with too few actions
    for a training sequence are refused in one line."""
    from data.loaders import held, load_rollout, rollout_files
    from models.vae import VAE
    from utils.stages.imagination import Learner, add_starting_data, parse_config

    logdir = tmp_path / "exp"  # a run of its own: the module's logdir holds another's
    shutil.copytree(imagination_logdir, logdir, ignore=shutil.ignore_patterns("imagination", "ctrl", "test_*"))
    flags = ["--logdir", logdir, "--datadir", tiny_data, "--max-iterations", 1, "--action-repeat", 2, *IMAGINATION]
    run_script("world-models/trainimagination.py", *flags)
    root = logdir / "imagination"
    record = json.loads((root / "record.json").read_text())
    steps, entry = record["real_steps"], record["history"][0]
    assert record["config"]["action_repeat"] == 2 and steps["data"] == TINY["rollouts"] * TINY["steps"]
    played = [np.load(root / "replay" / "thread_0" / f"rollout_{i}.npz") for i in range(2)]
    actions = sum(len(r["actions"]) for r in played)
    # each played episode: 20 env steps at most (--time-limit 20), one replay step per 2 of them
    assert all(len(r["actions"]) == 10 for r in played) and steps["collected"] == 40 and steps["evaluation"] == 20
    assert entry["updates"] == int(np.ceil(2 * actions / (4 * TINY["seq_len"])))
    assert entry["train_returns"] == pytest.approx([r["rewards"].sum() for r in played], abs=1e-3)
    state = torch.load(root / "ctrl" / "best.tar", weights_only=True)
    assert state["action_repeat"] == 2
    run_script("world-models/test_controller.py", "--logdir", root, "--episodes", 2, "--time-limit", 20,
               "--no-video", "--max-workers", 1)
    test = json.loads((root / "test_scores.json").read_text())
    assert test["action_repeat"] == 2 and test["steps"] == [20, 20]
    # the starting data as the learner holds it: 25 steps per 50-step rollout, the same reward in all
    config = parse_config("mdrnn", [str(f) for f in flags])
    learner = Learner(config, "mdrnn", "cpu")
    files = rollout_files(tiny_data)
    add_starting_data(learner, VAE(), files, "cpu")
    raw = [load_rollout(f) for f in files]
    assert len(learner.replay) == TINY["rollouts"] * TINY["steps"] // 2
    assert learner.replay.rewards.sum() == pytest.approx(sum(r["rewards"].sum() for r in raw), rel=1e-5)
    np.testing.assert_allclose(learner.replay.actions[:25], held(raw[0], 2)["actions"])
    np.testing.assert_allclose(learner.replay.actions[:25:5], raw[0]["actions"][:50:10] / 2
                               + raw[0]["actions"][1:50:10] / 2, rtol=1e-5)
    # the replay's measures read the starting data as the replay holds it
    run_script("utils/stages/replay_measures.py", "--run", root, "--datadir", tiny_data, "--out", tmp_path / "m.json")
    assert np.isfinite(json.loads((tmp_path / "m.json").read_text())["rows"][0]["r2"])
    before = snapshot(logdir)
    refused("world-models/trainimagination.py", *flags, "--action-repeat", 7, "--noreload",
            expect=f"no rollout is longer than --seq-len {TINY['seq_len']} actions (held --action-repeat 7 steps)")
    refused("world-models/trainimagination.py", *flags, "--action-repeat", 3,
            expect="made with --action-repeat 2, not 3")
    assert snapshot(logdir) == before
