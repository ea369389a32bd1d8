"""Shared fixtures: small simulated datasets and quiet, fast training settings."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

# Small models on a 2-core machine: several torch threads contend with each other (and with BLAS)
# and are many times slower than one.
torch.set_num_threads(1)

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
os.environ.setdefault("MPLBACKEND", "Agg")

#: Real public data shipped beside the repository (see ../shared/data/README.md).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Trainer arguments that keep test training quiet and fast.
QUIET = {"enable_progress_bar": False, "enable_model_summary": False}


@pytest.fixture(autouse=True)
def _quiet_logs():
    # Lightning's info lines (GPU available, trainer set-up) on every fit; warnings are filtered by
    # name in pyproject.toml ([tool.pytest.ini_options] filterwarnings), not here.
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    yield


@pytest.fixture
def small_sim():
    """A small simulated dataset (2 batches) with planted truth."""
    from splicevi.data import simulate

    return simulate(
        n_cells=150, n_genes=60, n_events=40, n_types=3, n_batches=2, observed_fraction=0.3, seed=3
    )


@pytest.fixture
def small_mdata(small_sim):
    """The small simulated dataset as a MuData in the data contract."""
    return small_sim.to_mudata()
