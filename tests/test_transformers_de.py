import pytest
import torch

from models.transformers_de import TraDE, TransformerDE, WindowStepper


@pytest.fixture(params=[TransformerDE, TraDE], ids=["transformer", "trade"])
def model(request):
    torch.manual_seed(0)
    return request.param().eval()


def test_outputs_have_the_mdrnn_shapes(model):
    mus, sigmas, logpi, r, d, h = model(torch.randn(10, 4, 3), torch.randn(10, 4, 32))
    assert mus.shape == sigmas.shape == (10, 4, 5, 32) and logpi.shape == (10, 4, 5)
    assert r.shape == d.shape == (10, 4) and h.shape == (10, 4, 256)


def test_causality(model):
    """Changing the inputs after step t leaves every output up to t unchanged."""
    a, z = torch.randn(16, 3, 3), torch.randn(16, 3, 32)
    before = model(a, z)
    t = 9
    a2, z2 = a.clone(), z.clone()
    a2[t + 1:] += 5.0
    z2[t + 1:] -= 3.0
    after = model(a2, z2)
    for x, y in zip(before, after):
        torch.testing.assert_close(x[: t + 1], y[: t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(x[t + 1:], y[t + 1:])


def test_stepper_equals_full_forward_beyond_the_context(model):
    """At each step the stepper's hidden equals the full forward pass over the last `context` steps."""
    context, steps, batch = 8, 30, 3
    a, z = torch.randn(steps, batch, 3), torch.randn(steps, batch, 32)
    stepper = model.stepper(batch, context)
    assert isinstance(stepper, WindowStepper)
    for t in range(steps):
        h = stepper.push(a[t], z[t])
        lo = max(0, t - context + 1)
        expected = model(a[lo:t + 1], z[lo:t + 1])[-1][-1]
        torch.testing.assert_close(h, expected, rtol=0, atol=1e-5)


def test_stepper_reset_starts_one_env_afresh(model):
    context, batch = 5, 2
    a, z = torch.randn(12, batch, 3), torch.randn(12, batch, 32)
    stepper = model.stepper(batch, context)
    for t in range(7):
        stepper.push(a[t], z[t])
    stepper.reset(torch.tensor([True, False]))
    assert (stepper.hidden[0] == 0).all()
    for t in range(7, 12):
        h = stepper.push(a[t], z[t])
        # env 0 restarted at step 7; env 1 kept its window
        torch.testing.assert_close(h[0], model(a[7:t + 1, :1], z[7:t + 1, :1])[-1][-1, 0], rtol=0, atol=1e-5)
        lo = max(0, t - context + 1)
        torch.testing.assert_close(h[1], model(a[lo:t + 1, 1:], z[lo:t + 1, 1:])[-1][-1, 0], rtol=0, atol=1e-5)


def test_trade_uses_a_gru_not_sinusoids():
    trade = TraDE()
    assert isinstance(trade.gru, torch.nn.GRU)
    assert not hasattr(TransformerDE(), "gru")


def test_trade_feeds_the_gru_output_alone_to_the_encoder():
    """TraDE's GRU output replaces the embedding: with a GRU that outputs zeros,
    the hidden sequence no longer depends on the inputs at all."""
    torch.manual_seed(0)
    model = TraDE().eval()
    with torch.no_grad():
        for p in model.gru.parameters():
            p.zero_()
    h1 = model.hiddens(torch.randn(6, 2, 3), torch.randn(6, 2, 32))
    h2 = model.hiddens(torch.randn(6, 2, 3), torch.randn(6, 2, 32))
    torch.testing.assert_close(h1, h2)


def test_transformer_applies_dropout_after_its_positions():
    torch.manual_seed(0)
    model = TransformerDE()
    x = torch.randn(10, 4, 32)
    from models.transformers_de import sinusoidal_encoding

    expected = x + sinusoidal_encoding(10, 32)
    torch.testing.assert_close(model.eval().with_positions(x), expected)
    dropped = model.train().with_positions(x)
    zeroed = dropped == 0
    assert 0.05 < zeroed.float().mean() < 0.2  # DROPOUT = 0.1
    torch.testing.assert_close(dropped[~zeroed], expected[~zeroed] / 0.9)


def test_hidden_at_equals_the_full_pass_at_each_sequences_own_position(model):
    a, z = torch.randn(9, 4, 3), torch.randn(9, 4, 32)
    newest = torch.tensor([8, 0, 3, 5])
    full = model.hiddens(a, z)[newest, torch.arange(4)]
    torch.testing.assert_close(model.hidden_at(a, z, newest), full, rtol=0, atol=1e-5)
