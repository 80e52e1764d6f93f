"""The stacked flow bank (deepscm.bank) against per-node training with deepscm.training.train."""

import copy

import pytest
import torch

from deepscm.bank import FlowBank, bank_groups, bankable, train_bank
from deepscm.errors import ConfigError
from deepscm.mechanisms import ConditionalFlow, LinearGaussian
from deepscm.mechanisms.base import MechanismSpec
from deepscm.training import Term, train

WIDTHS = (1, 3, 2)  # contexts padded to 3


def _flows(dtype=torch.float32, seed=0, widths=WIDTHS, **hparams):
    """Flows as ``DeepSCM.fit`` builds them (the mechanism's own initialisation)."""
    torch.manual_seed(seed)
    out = {}
    for i, c in enumerate(widths):
        mech = ConditionalFlow(**hparams)
        mech.build(MechanismSpec(1, c))
        out[f"n{i}"] = mech.to(dtype)
    return out


def _data(mechs, n, dtype=torch.float32, seed=0):
    """Non-linear, heteroscedastic, skewed data per node."""
    g = torch.Generator().manual_seed(seed)
    ctx = {k: torch.randn(n, m.spec.context_dim, generator=g, dtype=dtype) for k, m in mechs.items()}
    xs = {}
    for k, c in ctx.items():
        s = c.sum(1, keepdim=True)
        e = torch.randn(n, 1, generator=g, dtype=dtype)
        xs[k] = torch.tanh(2 * s) + 0.3 * s**2 + (0.5 + 0.3 * torch.sigmoid(s)) * (e + 0.4 * e**2)
    return xs, ctx


def _reference(mechs, xs, ctx, train_rows, val_rows, **options):
    """Per-node training: one default term per mechanism, stepped by ``train``."""
    terms = {
        k: Term(m, score=lambda r, m=m, k=k: m.loss(xs[k][r], ctx[k][r]),
                loss=lambda r, m=m, k=k: m.loss(xs[k][r], ctx[k][r]))
        for k, m in mechs.items()
    }
    return train(terms, train_rows, val_rows, generator=torch.Generator().manual_seed(1), progress=False, **options)


def _bank(mechs, xs, ctx, train_rows, val_rows, **options):
    return train_bank(mechs, xs, ctx, train_rows, val_rows, generator=torch.Generator().manual_seed(1),
                      progress=False, **options)


def _max_diff(a, b):
    return max(
        (pa - pb).abs().max().item()
        for k in a for pa, pb in zip(a[k].state_dict().values(), b[k].state_dict().values(), strict=True)
    )


HPARAMS = [dict(hidden_features=(16, 16), bins=6), dict(transforms=2, bins=4, hidden_features=(8, 8, 8)),
           dict(hidden_features=(), bins=4), dict(flow="maf", hidden_features=(8,))]


@pytest.mark.parametrize("hparams", HPARAMS, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()))
def test_one_step_equals_per_node_training(hparams):
    """One full-batch Adam step from the same initialisation: the same parameters to 1e-6
    (float32; the step moves weights by ~lr = 5e-3) and to 1e-12 in float64."""
    for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        ref = _flows(dtype, **hparams)
        xs, ctx = _data(ref, 600, dtype)
        bank = copy.deepcopy(ref)
        start = copy.deepcopy(ref)
        rows = torch.arange(600)
        _reference(ref, xs, ctx, rows, None, epochs=1, batch_size=600, lr=5e-3)
        _bank(bank, xs, ctx, rows, None, epochs=1, batch_size=600, lr=5e-3)
        assert _max_diff(ref, start) > 1e-3  # the step did move the weights
        assert _max_diff(ref, bank) <= tol


def test_short_training_same_weights_history_and_score():
    """Six epochs of mini-batches with clipping, weight decay and per-node early stopping:
    float64 to 1e-9 (weights, per-epoch losses, best epochs); float32 held-out scores to 1e-3
    (measured ~5e-5: round-off is amplified by Adam across steps, not a different method)."""
    options = dict(epochs=6, batch_size=64, lr=5e-3, patience=2, weight_decay=1e-3, max_grad_norm=0.5)
    for dtype in (torch.float64, torch.float32):
        ref = _flows(dtype, hidden_features=(16, 16), bins=6)
        xs, ctx = _data(ref, 400, dtype)
        bank = copy.deepcopy(ref)
        rows = torch.arange(400)
        h_ref = _reference(ref, xs, ctx, rows[:320], rows[320:], **options)
        h_bank = _bank(bank, xs, ctx, rows[:320], rows[320:], **options)
        assert h_ref.epochs_run == h_bank.epochs_run and h_ref.best_epoch == h_bank.best_epoch
        for k in ref:
            assert len(h_ref.val_loss[k]) == len(h_bank.val_loss[k])
            tol = 1e-9 if dtype == torch.float64 else 1e-3
            torch.testing.assert_close(torch.tensor(h_bank.val_loss[k]), torch.tensor(h_ref.val_loss[k]),
                                       rtol=0, atol=tol)
        if dtype == torch.float64:
            assert _max_diff(ref, bank) <= 1e-9
            for k in ref:
                torch.testing.assert_close(torch.tensor(h_bank.train_loss[k]), torch.tensor(h_ref.train_loss[k]),
                                           rtol=0, atol=1e-9)


def test_stopped_node_keeps_its_best_weights():
    """A node that stops early ends with the weights it had after its best epoch: those of the
    same bank run for exactly best_epoch + 1 epochs without early stopping (a node's trajectory
    does not depend on the others', so this is exact)."""
    mechs = _flows(hidden_features=(32, 32), bins=8)
    xs, ctx = _data(mechs, 260, seed=3)
    rows = torch.arange(260)
    options = dict(batch_size=32, lr=2e-2, patience=2)
    stopped = copy.deepcopy(mechs)
    hist = _bank(stopped, xs, ctx, rows[:200], rows[200:], epochs=40, **options)
    early = [k for k in mechs if len(hist.val_loss[k]) < hist.epochs_run]
    assert early, "no node stopped early; the test needs one"
    for k in early:
        best = hist.best_epoch[k]
        assert len(hist.val_loss[k]) == best + 1 + options["patience"]
        assert hist.val_loss[k][best] == min(hist.val_loss[k])
        replay = copy.deepcopy(mechs)
        _bank(replay, xs, ctx, rows[:200], None, epochs=best + 1, **options)
        for a, b in zip(stopped[k].state_dict().values(), replay[k].state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_padding_cannot_change_a_node():
    """A width-1 node trained beside a width-3 node (padded) equals it trained alone (float64),
    and the padded rows of the stacked first layer stay exactly zero."""
    both = _flows(torch.float64, widths=(1, 3), hidden_features=(8,), bins=4)
    xs, ctx = _data(both, 300, torch.float64)
    alone = {"n0": copy.deepcopy(both["n0"])}
    rows = torch.arange(300)
    options = dict(epochs=3, batch_size=50, lr=1e-2, weight_decay=1e-2)
    _bank(both, xs, ctx, rows, None, **options)
    _bank(alone, {"n0": xs["n0"]}, {"n0": ctx["n0"]}, rows, None, **options)
    assert _max_diff({"n0": both["n0"]}, alone) <= 1e-12
    stacked = FlowBank([both["n0"], both["n1"]])
    assert torch.equal(stacked.w_in[0, 1:], torch.zeros_like(stacked.w_in[0, 1:]))


def test_write_back_round_trip_and_log_prob():
    """The bank's log-density is each mechanism's own (so a written-back mechanism answers
    queries as trained)."""
    mechs = _flows(hidden_features=(16, 16), bins=6, transforms=2)
    with torch.no_grad():
        for m in mechs.values():
            for p in m.parameters():
                p.normal_(0, 0.3)
    xs, ctx = _data(mechs, 200)
    bank = FlowBank(list(mechs.values()))
    padded = torch.zeros(3, 200, 3)
    for i, k in enumerate(mechs):
        padded[i, :, : WIDTHS[i]] = ctx[k]
    with torch.no_grad():
        lp = bank.log_prob(padded, torch.stack([xs[k].reshape(-1) for k in mechs]))
        for i, (k, m) in enumerate(mechs.items()):
            torch.testing.assert_close(lp[i], m.log_prob(xs[k], ctx[k]), rtol=0, atol=1e-4)
    copies = [copy.deepcopy(m) for m in mechs.values()]
    for m in copies:
        for p in m.parameters():
            p.data.zero_()
    bank.write_back(copies)
    assert _max_diff(dict(zip(mechs, copies)), mechs) == 0


def test_groups_and_refusals():
    mechs = _flows(hidden_features=(8,))
    root = ConditionalFlow()
    root.build(MechanismSpec(1, 0))
    other = ConditionalFlow(bins=3)
    other.build(MechanismSpec(1, 2))
    linear = LinearGaussian()
    linear.build(MechanismSpec(1, 2))
    assert not bankable(root) and not bankable(linear)
    groups = bank_groups({**mechs, "root": root, "other": other, "lin": linear})
    assert groups == [["n0", "n1", "n2"], ["other"]]
    with pytest.raises(ConfigError, match="share hyper-parameters"):
        FlowBank([mechs["n0"], other])
    with pytest.raises(ConfigError, match="compile"):
        xs, ctx = _data(mechs, 10)
        train_bank(mechs, xs, ctx, torch.arange(10), None, epochs=1, batch_size=5, lr=1e-3,
                   generator=torch.Generator(), compile="yes")


@pytest.mark.slow
def test_compiled_bank_matches_eager():
    """``compile=True`` (inductor; a warm-up of a minute on CPU) trains to the eager bank's
    weights, up to float32 round-off of the fused kernels (two epochs, ragged last batch eager)."""
    eager = _flows(hidden_features=(16, 16), bins=6)
    xs, ctx = _data(eager, 300)
    compiled = copy.deepcopy(eager)
    rows = torch.arange(300)
    options = dict(epochs=2, batch_size=64, lr=5e-3)
    _bank(eager, xs, ctx, rows, None, compile=False, **options)
    _bank(compiled, xs, ctx, rows, None, compile=True, **options)
    assert _max_diff(eager, compiled) <= 1e-4


def test_plateau_schedule_same_in_bank_and_per_node_training():
    """With the plateau schedule (lr × 0.5 after every epoch without improvement at patience
    4), the bank and per-node training take the same steps: float64 weights and histories to
    1e-9; the rates did drop (a node ran past its first non-improving epoch)."""
    options = dict(epochs=30, batch_size=40, lr=3e-2, patience=4, lr_decay=0.5)
    ref = _flows(torch.float64, hidden_features=(16, 16), bins=6)
    xs, ctx = _data(ref, 300, torch.float64, seed=5)
    bank = copy.deepcopy(ref)
    rows = torch.arange(300)
    h_ref = _reference(ref, xs, ctx, rows[:240], rows[240:], **options)
    h_bank = _bank(bank, xs, ctx, rows[:240], rows[240:], **options)
    assert h_ref.best_epoch == h_bank.best_epoch and h_ref.epochs_run == h_bank.epochs_run
    assert h_ref.epochs_run < options["epochs"]  # every node stopped
    assert _max_diff(ref, bank) <= 1e-9
    for k in ref:
        torch.testing.assert_close(torch.tensor(h_bank.val_loss[k]), torch.tensor(h_ref.val_loss[k]),
                                   rtol=0, atol=1e-9)


def test_plateau_decays_then_stops():
    """Plateau(patience 8): the rate halves after every 2 epochs without improvement, three
    times at most, and the term stops at the plateau after its third decay (or after 8)."""
    from deepscm.training import Plateau

    schedule = Plateau(patience=8, min_delta=1e-4, decay=0.5)
    outcomes = [schedule.update("t", v) for v in [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.9, 0.9, 0.9, 0.9]]
    assert outcomes == ["improved", "improved", "waiting", "decayed", "waiting", "improved",
                        "waiting", "decayed", "waiting", "decayed", "waiting", "stopped"]
    assert schedule.rate("t") == 0.125
    constant = Plateau(patience=3, min_delta=1e-4, decay=1.0)
    assert [constant.update("t", v) for v in [1.0, 1.0, 1.0, 1.0]] == ["improved", "waiting", "waiting", "stopped"]
    assert constant.rate("t") == 1.0
    with pytest.raises(ConfigError, match="lr_decay"):
        Plateau(patience=3, min_delta=0.0, decay=0.0)


def test_plateau_factor_and_constant_rate_terms():
    """A term's factor multiplies its patience and decay interval; a term whose optimisers the
    loop does not own keeps its rate and stops after its patience only — three separate
    plateaus of ``patience // 4`` epochs are not three decays (before the fix such a term
    stopped at its fourth short plateau, its rate never lowered)."""
    from deepscm.training import Plateau

    slow = Plateau(patience=4, min_delta=1e-4, decay=0.5, factors={"t": 3})
    outcomes = [slow.update("t", v) for v in [1.0] + [1.0] * 12]
    assert outcomes[3] == "decayed" and outcomes[6] == "decayed" and outcomes[9] == "decayed"
    assert outcomes.index("stopped") == 12 and outcomes[1:3] == ["waiting"] * 2
    own = Plateau(patience=8, min_delta=1e-4, decay=0.5, constant=["t"])
    bumpy = [1.0, 1.0, 1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.6]
    assert "stopped" not in [own.update("t", v) for v in bumpy]
    assert own.rate("t") == 1.0
    assert [own.update("t", 0.6) for _ in range(8)][-1] == "stopped"
