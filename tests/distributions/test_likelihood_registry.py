"""A splicing likelihood is one class: registering it is all a new likelihood needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from splicevi import SPLICEVI
from splicevi.distributions import SPLICING_LIKELIHOODS, SplicingLikelihood, register_likelihood
from splicevi.distributions.likelihoods import Binomial

from conftest import QUIET

#: The toy's logits are twice the binomial's: PSI = σ(logit / 2).
SCALE = 2.0


class HalfLogitBinomial(SplicingLikelihood):
    """Binomial with PSI = σ(logit / 2): a likelihood defined in a test file only."""

    name = "half_logit_binomial"

    def decoder_bias(self, p):
        return SCALE * torch.logit(p)

    def psi(self, logits, groups, n_events):
        return torch.sigmoid(logits / SCALE)

    def log_likelihood(self, obs, logits, log_concentration):
        return Binomial().log_likelihood(obs, logits / SCALE, log_concentration)


@pytest.fixture
def toy_likelihood():
    register_likelihood(HalfLogitBinomial)
    yield HalfLogitBinomial
    SPLICING_LIKELIHOODS.pop(HalfLogitBinomial.name)


def test_registered_likelihood_trains_and_decodes(small_mdata, toy_likelihood):
    """The model, the module's loss, its decoder bias and its decoded PSI all use the toy's class."""
    SPLICEVI.setup_mudata(small_mdata, batch_key="batch")
    torch.manual_seed(0)
    model = SPLICEVI(small_mdata, splicing_loss_type="half_logit_binomial", n_latent=4)
    module = model.module
    assert isinstance(module.likelihood, HalfLogitBinomial)
    assert module.log_concentration is None
    # Decoder bias: the toy's inverse link of the junctions' mean PSI.
    p = module.psi_center.clamp(1e-3, 1.0 - 1e-3)
    torch.testing.assert_close(module.z_decoder_splicing.bias.detach(), SCALE * torch.logit(p))

    model.train(max_epochs=2, batch_size=64, early_stopping=False, **QUIET)
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()

    # The loss is the toy's log-likelihood of the observed entries.
    module.eval()
    tensors = next(iter(model._data_loader(batch_size=64)))
    with torch.no_grad():
        inference_outputs, generative_outputs, losses = module(tensors)
    obs = inference_outputs["observed"]
    logits = generative_outputs["splicing_logits"]
    expected = -Binomial().log_likelihood(obs, logits / SCALE, None)
    torch.testing.assert_close(losses.reconstruction_loss["reconstruction_loss_splicing"], expected)

    # Decoded PSI is the toy's link of the decoder's logits.
    z = torch.as_tensor(model.get_latent_representation()[:10])
    batch = torch.zeros(10, 1)
    with torch.no_grad():
        dense = module.z_decoder_splicing.dense_logits(z, batch)
    torch.testing.assert_close(module.decode_psi(z, batch), torch.sigmoid(dense / SCALE))
    psi = model.get_normalized_splicing(n_samples=1)
    assert psi.shape == (small_mdata.n_obs, model.n_junctions)
    assert np.all((np.asarray(psi) > 0) & (np.asarray(psi) < 1))


def test_unknown_likelihood_names_the_registered_ones(small_mdata, toy_likelihood):
    SPLICEVI.setup_mudata(small_mdata, batch_key="batch")
    with pytest.raises(ValueError, match="half_logit_binomial"):
        SPLICEVI(small_mdata, splicing_loss_type="poisson")


def test_a_name_is_registered_once(toy_likelihood):
    class Other(SplicingLikelihood):
        name = "half_logit_binomial"

    with pytest.raises(ValueError, match="already registered"):
        register_likelihood(Other)
    with pytest.raises(TypeError):
        register_likelihood(int)


def test_builtin_likelihoods_are_registered():
    assert list(SPLICING_LIKELIHOODS)[:3] == ["binomial", "beta_binomial", "dirichlet_multinomial"]
    assert all(SPLICING_LIKELIHOODS[name].name == name for name in SPLICING_LIKELIHOODS)


def test_workflow_config_accepts_the_registered_likelihoods(toy_likelihood):
    """The workflow's one config check reads the choices from the registry, not from a copy in the schema."""
    from splicevi.cli._workflow_config import check_config

    schema = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
    config = {"model": {"splicing_loss_type": "half_logit_binomial"}}
    assert check_config(config, schema) == []
    assert config["train"]["max_epochs"] == 500 and config["model"]["n_latent"] is None  # defaults filled in
    errors = check_config({"model": {"splicing_loss_type": "poisson"}}, schema)
    assert len(errors) == 1 and errors[0].startswith("config key 'model.splicing_loss_type'")
