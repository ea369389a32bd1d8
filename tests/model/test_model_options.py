"""Every model option changes the module or the loss: an option silently ignored fails here."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as kld

from model_fixtures import OPTIONS
from splicevi import SPLICEVI

#: Model-level options that leave the module alone (tested in test_model.py).
MODEL_ONLY = ("fully_paired",)
_DEFAULTS = {k: p.default for k, p in inspect.signature(SPLICEVI.__init__).parameters.items()}
#: Options of model_fixtures.OPTIONS that differ from the defaults and reach the module.
MODULE_OPTIONS = [
    o for o in OPTIONS if any(_DEFAULTS.get(k) != v for k, v in o.items()) and not set(o) & set(MODEL_ONLY)
]


def _model(mdata, **options) -> SPLICEVI:
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(0)
    return SPLICEVI(mdata, **options)


def _loss(model: SPLICEVI, tensors) -> torch.Tensor:
    """Loss of one minibatch in eval mode with a fixed latent sample."""
    model.module.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        _, _, out = model.module(tensors)
    return out


def _copy_shared_weights(source: SPLICEVI, target: SPLICEVI) -> None:
    """Load every tensor of ``source`` that ``target`` has with the same name and shape."""
    theirs = target.module.state_dict()
    shared = {
        k: v for k, v in source.module.state_dict().items() if k in theirs and theirs[k].shape == v.shape
    }
    target.module.load_state_dict(shared, strict=False)


def _structure(model: SPLICEVI) -> dict:
    """Name → (shape, learned) of every tensor of the module (a learned weight differs from a fixed one)."""
    learned = dict(model.module.named_parameters())
    return {k: (tuple(v.shape), k in learned) for k, v in model.module.state_dict().items()}


@pytest.mark.parametrize(
    "options",
    MODULE_OPTIONS,
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_option_changes_module_or_loss(small_mdata, options):
    """Same data and (where the shapes allow) the same weights: the option changes structure or loss."""
    base = _model(small_mdata)
    other = _model(small_mdata, **options)
    if _structure(base) != _structure(other):
        return  # the option built a different module (parameters added, removed or reshaped)
    _copy_shared_weights(base, other)
    tensors = next(iter(base._data_loader(batch_size=64)))
    assert float(_loss(base, tensors).loss) != pytest.approx(float(_loss(other, tensors).loss), rel=1e-6)


@pytest.mark.parametrize("likelihood", ["binomial", "beta_binomial"])
def test_splicing_likelihood_changes_the_splicing_loss(small_mdata, likelihood):
    """With the same decoder and encoders, each splicing likelihood gives another reconstruction loss."""
    base = _model(small_mdata)
    other = _model(small_mdata, splicing_loss_type=likelihood)
    _copy_shared_weights(base, other)
    tensors = next(iter(base._data_loader(batch_size=64)))
    rl_base = _loss(base, tensors).reconstruction_loss["reconstruction_loss_splicing"]
    rl_other = _loss(other, tensors).reconstruction_loss["reconstruction_loss_splicing"]
    assert not torch.allclose(rl_base, rl_other)
    # The expression term is untouched by the splicing likelihood.
    torch.testing.assert_close(
        _loss(base, tensors).reconstruction_loss["reconstruction_loss_expression"],
        _loss(other, tensors).reconstruction_loss["reconstruction_loss_expression"],
    )


def test_fixed_beta_binomial_concentration_is_not_learned(small_mdata):
    learned = _model(small_mdata, splicing_loss_type="beta_binomial")
    fixed = _model(small_mdata, splicing_loss_type="beta_binomial", splicing_concentration=20.0)
    assert "log_concentration" in dict(learned.module.named_parameters())
    assert "log_concentration" not in dict(fixed.module.named_parameters())
    torch.testing.assert_close(
        fixed.module.splicing_concentration_per_junction(), torch.full((fixed.n_junctions,), 20.0)
    )


@pytest.mark.parametrize("penalty", ["Jeffreys", "MMD"])
def test_modality_penalty_adds_its_term(small_mdata, penalty):
    """The penalty is the symmetric KL (Jeffreys) or the Gaussian MMD of the two posteriors, and is in the loss."""
    model = _model(small_mdata, modality_penalty=penalty)
    tensors = next(iter(model._data_loader(batch_size=64)))
    model.module.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        inference, _, out = model.module(tensors)
    paired = inference["mask_expr"] & inference["mask_spl"]
    assert bool(paired.any())
    term = out.kl_local["kl_divergence_paired"]
    if penalty == "Jeffreys":
        q_e = Normal(inference["qzm_expr"], inference["qzv_expr"].sqrt())
        q_s = Normal(inference["qzm_spl"], inference["qzv_spl"].sqrt())
        expected = ((kld(q_e, q_s) + kld(q_s, q_e)).sum(1)) * paired
        torch.testing.assert_close(term, expected)
    else:
        a, b = inference["qzm_expr"][paired], inference["qzm_spl"][paired]
        bw = float(a.shape[1])

        def k(x, y):
            return torch.exp(-torch.cdist(x, y).pow(2) / bw).mean()

        mmd = k(a, a) + k(b, b) - 2 * k(a, b)
        torch.testing.assert_close(term[paired], mmd.expand(int(paired.sum())))
    assert float(term.sum()) > 0
    # The term enters the loss: the same module without the penalty loses exactly its mean.
    model.module.modality_penalty = "None"
    torch.manual_seed(1)
    with torch.no_grad():
        _, _, plain = model.module(tensors)
    # float32 sums of a loss of this size: compare at its resolution.
    assert float(out.loss - plain.loss) == pytest.approx(float(term.mean()), abs=1e-5 * abs(float(out.loss)))


def test_n_latent_and_concatenate_set_the_latent_size(small_mdata):
    assert _model(small_mdata, n_latent=5).module.n_joint_latent == 5
    assert _model(small_mdata, n_latent=5, modality_weights="concatenate").module.n_joint_latent == 10


def test_unknown_arguments_raise(small_mdata):
    with pytest.raises(TypeError, match="n_latnet"):
        _model(small_mdata, n_latnet=5)
    with pytest.raises(TypeError, match="batchkey"):
        SPLICEVI.setup_mudata(small_mdata, batchkey="batch")
