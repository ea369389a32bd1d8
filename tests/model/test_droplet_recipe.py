"""The droplet recipe's options reach the model from the API, the workflow config and the CLI's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from splicevi import SPLICEVI

REPO = Path(__file__).resolve().parents[2]
RECIPE = {
    "pool_mode": "sum",
    "splicing_reconstruction_weight": "balanced",
    "splicing_weight_prior_sd": "none",
    "splicing_encoder_weighting": "reads",
}


def _model(mdata, **options) -> SPLICEVI:
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(0)
    return SPLICEVI(mdata, n_latent=6, **options)


def test_none_spelled_in_a_config_turns_the_weight_prior_off(small_mdata):
    """``"none"`` (YAML) and ``None`` (Python) both mean no prior; the default keeps sd 0.1."""
    assert _model(small_mdata).module.splicing_weight_prior_sd == pytest.approx(0.1)
    for spelling in ("none", "None", None):
        model = _model(small_mdata, splicing_weight_prior_sd=spelling)
        assert model.module.splicing_weight_prior_sd is None, spelling
        assert float(model.module._splicing_weight_prior()) == 0.0


def test_the_recipe_from_cli_json_builds_the_model_it_names(small_mdata):
    """The workflow passes the recipe as JSON; the model gets sum pooling, read weights and no prior."""
    from splicevi.cli.train import check_model_kwargs

    kwargs = json.loads(json.dumps(RECIPE))
    check_model_kwargs(kwargs)
    model = _model(small_mdata, **kwargs)
    module = model.module
    assert module.z_encoder_splicing.pool_mode == "sum"
    assert module.splicing_encoder_weighting == "reads"
    assert module.splicing_weight_prior_sd is None
    assert float(module.splicing_reconstruction_weight) >= 1.0


def test_bad_pool_mode_names_the_choices(small_mdata):
    with pytest.raises(ValueError, match="pool_mode must be one of"):
        _model(small_mdata, pool_mode="max")


@pytest.mark.skipif(
    not (REPO / "workflow" / "schemas" / "config.schema.yaml").exists(), reason="no workflow schema"
)
def test_config_check_accepts_the_recipe_and_refuses_its_misspellings():
    """The config schema takes the recipe's values and names the key of a wrong one."""
    from splicevi.cli._workflow_config import check_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert check_config({"model": dict(RECIPE)}, schema) == []
    assert check_config({"model": {"splicing_weight_prior_sd": 0.3}}, schema) == []
    for key, bad in (
        ("pool_mode", "max"),
        ("splicing_reconstruction_weight", "balance"),
        ("splicing_reconstruction_weight", 0),
        ("splicing_weight_prior_sd", "off"),
        ("splicing_weight_prior_sd", -1.0),
    ):
        errors = check_config({"model": {key: bad}}, schema)
        assert len(errors) == 1 and f"model.{key}" in errors[0], (key, bad, errors)
        if key != "pool_mode":  # number-or-word keys: the message names what the key takes
            assert repr(bad) in errors[0] and ("none" in errors[0] or "balanced" in errors[0]), errors
    template = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert all(template["model"][key] is None for key in RECIPE)


def test_recipe_encoder_sums_read_weighted_residuals(small_mdata):
    """Recipe encoder: sum over a cell's entries of read information × (PSI − centre) × embedding.

    So a cell's code grows with its reads, as the likelihood ratio of a count model does.
    """
    from splicevi.module._splicevae import read_information

    model = _model(
        small_mdata, splicing_latent_weight=5.0, splicing_encoder_weighting="reads", pool_mode="sum"
    )
    module = model.module
    assert float(module.splicing_latent_weight) == pytest.approx(5.0)
    tensors = next(iter(model._data_loader(batch_size=32)))
    inputs = module._get_inference_input(tensors)
    obs = module.observed(
        inputs["junction_counts"], inputs["atse_counts"], inputs["psi_mask"], inputs["junction_ratio"]
    )
    centred = obs.psi - module.psi_center.index_select(0, obs.cols)
    weight = module.encoder_entry_weight(obs)
    assert weight is not None
    torch.testing.assert_close(weight, read_information(obs.n))
    encoder = module.z_encoder_splicing
    with torch.no_grad():
        pooled = encoder.pool(obs, centred, weight)
    contributions = (weight * centred)[:, None] * encoder.feature_embedding.detach()[obs.cols]
    expected = torch.zeros(obs.n_cells, encoder.code_dim).index_add_(0, obs.rows, contributions)
    torch.testing.assert_close(pooled[:, : encoder.code_dim], expected, rtol=1e-4, atol=1e-5)
