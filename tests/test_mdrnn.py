import math

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from models.mdrnn import MDRNN, MDRNNCell, MixtureHead, dropout_masks, dynamics_loss, gmm_loss


def reference_nll(batch, mus, sigmas, logpi):
    mix = MixtureSameFamily(Categorical(logits=logpi), Independent(Normal(mus, sigmas), 1))
    return -mix.log_prob(batch)


def test_gmm_loss_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(7, 4, 32, generator=g)
    mus = torch.randn(7, 4, 5, 32, generator=g)
    sigmas = torch.rand(7, 4, 5, 32, generator=g) + 0.1
    logpi = torch.log_softmax(torch.randn(7, 4, 5, generator=g), -1)
    ours = gmm_loss(batch, mus, sigmas, logpi, reduce=False)
    assert ours.shape == (7, 4)
    torch.testing.assert_close(ours, reference_nll(batch, mus, sigmas, logpi), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(gmm_loss(batch, mus, sigmas, logpi), ours.mean())


def test_gmm_loss_is_finite_far_from_every_component():
    batch = torch.full((2, 32), 1e3)
    mus, sigmas = torch.zeros(2, 5, 32), torch.full((2, 5, 32), 0.01)
    logpi = torch.log_softmax(torch.zeros(2, 5), -1)
    loss = gmm_loss(batch, mus, sigmas, logpi)
    assert math.isfinite(loss.item()) and loss.item() > 1e9


def test_mixture_head_shapes_and_normalisation():
    mus, sigmas, logpi, r, d = MixtureHead()(torch.randn(6, 3, 256))
    assert mus.shape == sigmas.shape == (6, 3, 5, 32)
    assert logpi.shape == (6, 3, 5) and r.shape == d.shape == (6, 3)
    assert (sigmas > 0).all()
    torch.testing.assert_close(logpi.exp().sum(-1), torch.ones(6, 3))


def test_cell_shares_weights_and_matches_sequence_model():
    torch.manual_seed(0)
    model = MDRNN().eval()
    a, z = torch.randn(12, 2, 3), torch.randn(12, 2, 32)
    full = model(a, z)
    cell = MDRNNCell(model, 2)
    assert cell.cell.weight_ih.data_ptr() == model.rnn.weight_ih_l0.data_ptr()
    hs = torch.stack([cell.push(a[t], z[t]) for t in range(12)])
    torch.testing.assert_close(hs, full[-1], rtol=1e-5, atol=1e-5)
    cell.reset(torch.tensor([True, False]))
    assert (cell.hidden[0] == 0).all() and (cell.hidden[1] != 0).any()


def test_dropout_training_and_stepping_agree():
    """The masked LSTM of training and the stepper of a dream compute the same recurrence."""
    torch.manual_seed(0)
    model = MDRNN(dropout=0.2)
    a, z = torch.randn(12, 3, 3), torch.randn(12, 3, 32)
    with torch.no_grad():
        plain, _ = model.rnn(torch.cat([a, z], -1))
        torch.testing.assert_close(model.masked(a, z, torch.ones(3, 32), torch.ones(3, 256)), plain,
                                   rtol=1e-5, atol=1e-5)
        masks = dropout_masks(3, 0.2, generator=torch.Generator().manual_seed(1))
        assert {round(v, 4) for v in masks[1].unique().tolist()} == {0.0, 1.25}  # kept units scaled by 1 / (1 - p)
        masked = model.masked(a, z, *masks)
        cell = MDRNNCell(model, 3)
        cell.masks = masks
        torch.testing.assert_close(torch.stack([cell.push(a[t], z[t]) for t in range(12)]), masked,
                                   rtol=1e-5, atol=1e-5)
        assert (masked - plain).abs().max() > 1e-2
        # in training each call draws new masks; in eval there are none
        model.train()
        assert not torch.equal(model(a, z)[-1], model(a, z)[-1])
        model.eval()
        torch.testing.assert_close(model(a, z)[-1], plain)


def test_dynamics_loss_scaling():
    torch.manual_seed(0)
    out = MDRNN()(torch.randn(4, 2, 3), torch.randn(4, 2, 32))
    nxt, rew, term = torch.randn(4, 2, 32), torch.randn(4, 2), torch.zeros(4, 2)
    without = dynamics_loss(out, nxt, rew, term, include_reward=False)
    with_r = dynamics_loss(out, nxt, rew, term, include_reward=True)
    torch.testing.assert_close(without["loss"], (without["gmm"] + without["bce"]) / 33)
    torch.testing.assert_close(with_r["loss"], (with_r["gmm"] + with_r["bce"] + with_r["mse"]) / 34)
