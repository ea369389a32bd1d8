"""Where a SPLICEVI training step spends its time, phase by phase, next to SCVI's step.

Builds one synthetic grid point in memory (the generator of ``train_speed.py``), sets SPLICEVI up
in the lean layout (junction counts only) or the reference API's layout (``junc_ratio``,
``cell_by_cluster_matrix``, ``cell_by_junction_matrix``, ``psi_mask`` registered), and runs training
steps by hand (forward, backward, Adam step) timing each phase: minibatch collation, the observed
entries, the encoders, the decoders, the likelihoods, backward and the optimiser step. SCVI's
module on the expression modality runs the same loop. With ``--torch-profile`` the top operators
of the SPLICEVI steps are printed too (torch.profiler, self CPU time).

Usage
-----
    python bench/profile_train.py --cells 6000 --genes 2000 --junctions 12000 --steps 20
    python bench/profile_train.py --setup reference --torch-profile
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def reference_layers(mdata) -> None:
    """Add the reference implementation's four splicing layers (derived from the counts)."""
    from splicevi.data.layers import event_codes, splicing_layers

    spl = mdata.mod["splicing"]
    codes, _ = event_codes(spl.var["event_id"])
    for name, layer in splicing_layers(spl.layers["cell_by_junction_matrix"], codes).items():
        spl.layers[name] = layer


def setup(mdata, layout: str) -> None:
    """Register the MuData as the lean file is (counts only) or as the reference API shows."""
    from splicevi import SPLICEVI

    if layout == "lean":
        SPLICEVI.setup_mudata(
            mdata,
            rna_layer=None,
            junc_counts_layer="cell_by_junction_matrix",
            modalities={"rna_layer": "rna", "junc_counts_layer": "splicing"},
        )
    else:
        reference_layers(mdata)
        SPLICEVI.setup_mudata(
            mdata,
            rna_layer=None,
            junc_ratio_layer="junc_ratio",
            atse_counts_layer="cell_by_cluster_matrix",
            junc_counts_layer="cell_by_junction_matrix",
            psi_mask_layer="psi_mask",
            modalities={
                "rna_layer": "rna",
                "junc_ratio_layer": "splicing",
                "atse_counts_layer": "splicing",
                "junc_counts_layer": "splicing",
                "psi_mask_layer": "splicing",
            },
        )


class Phases:
    """Wall time per named phase (accumulated)."""

    def __init__(self):
        self.total = defaultdict(float)
        self._t = None

    def start(self):
        """Start timing the next phase."""
        self._t = time.perf_counter()

    def lap(self, name: str):
        """Add the time since the last lap to ``name``."""
        now = time.perf_counter()
        self.total[name] += now - self._t
        self._t = now


def splicevi_steps(model, steps: int, batch_size: int, profile: bool) -> dict:
    """Time ``steps`` training steps of SPLICEVI's module, phase by phase."""
    import torch

    module = model.module
    module.train()
    loader = model._train_loader(batch_size)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    ph = Phases()
    it = iter(loader)
    keys = None
    prof = None
    if profile:
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        prof.__enter__()
    entries = 0
    for step in range(steps + 1):
        if step == 1:  # the first step warms caches; time the rest
            ph = Phases()
            entries = 0
        ph.start()
        try:
            tensors = next(it)
        except StopIteration:
            it = iter(loader)
            tensors = next(it)
        keys = sorted(tensors)
        ph.lap("collate")
        inp = module._get_inference_input(tensors)
        obs = module.observed(
            *(inp[k] for k in ("junction_counts", "atse_counts", "psi_mask", "junction_ratio"))
        )
        obs.layout()
        ph.lap("observed entries")
        entries += obs.rows.numel()
        # Inference with the entries already built (timed above), not built a second time.
        orig = module.observed
        module.observed = lambda *a, _obs=obs, **k: _obs
        io = module.inference(**inp)
        module.observed = orig
        ph.lap("inference (encoders)")
        go = module.generative(**module._get_generative_input(tensors, io))
        ph.lap("generative (decoders)")
        loss = module.loss(tensors, io, go).loss
        ph.lap("loss")
        opt.zero_grad()
        loss.backward()
        ph.lap("backward")
        opt.step()
        ph.lap("optimizer")
    if prof is not None:
        prof.__exit__(None, None, None)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    out = {k: round(v / steps * 1e3, 2) for k, v in ph.total.items()}
    out["step_ms"] = round(sum(ph.total.values()) / steps * 1e3, 2)
    out["observed_entries_per_step"] = int(entries / steps)
    out["minibatch_keys"] = keys
    return out


def scvi_steps(rna, steps: int, batch_size: int) -> dict:
    """The same loop for scvi-tools' SCVI on the expression modality."""
    import scvi
    import torch

    scvi.model.SCVI.setup_anndata(rna)
    model = scvi.model.SCVI(rna)
    module = model.module
    module.train()
    loader = model._make_data_loader(rna, batch_size=batch_size, shuffle=True)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    ph = Phases()
    it = iter(loader)
    for step in range(steps + 1):
        if step == 1:
            ph = Phases()
        ph.start()
        try:
            tensors = next(it)
        except StopIteration:
            it = iter(loader)
            tensors = next(it)
        ph.lap("collate")
        _, _, loss = module(tensors)
        ph.lap("forward")
        opt.zero_grad()
        loss.loss.backward()
        ph.lap("backward")
        opt.step()
        ph.lap("optimizer")
    out = {k: round(v / steps * 1e3, 2) for k, v in ph.total.items()}
    out["step_ms"] = round(sum(ph.total.values()) / steps * 1e3, 2)
    return out


def main(argv=None) -> int:
    """Profile SPLICEVI (one set-up) and SCVI training steps on one synthetic grid point."""
    import warnings

    import torch

    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--junctions", type=int, default=12_000)
    parser.add_argument("--fraction", type=float, default=0.15)
    parser.add_argument("--setup", choices=["lean", "reference"], default="lean")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--torch-profile", action="store_true")
    parser.add_argument("--no-scvi", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from splicevi import SPLICEVI
    from train_speed import synthetic_mudata

    mdata, _, _ = synthetic_mudata(args.cells, args.junctions, args.fraction, n_genes=args.genes)
    rna = mdata.mod["rna"].copy()
    setup(mdata, args.setup)
    model = SPLICEVI(mdata)

    def train_loader(batch_size):
        from splicevi.model._training import SparseDataSplitter

        splitter = SparseDataSplitter(
            model.adata_manager,
            train_size=1.0,
            batch_size=batch_size,
            **getattr(model, "_loader_kwargs", lambda m: {})(model.adata_manager),
        )
        splitter.setup()
        return splitter.train_dataloader()

    model._train_loader = train_loader
    result = {
        "point": vars(args),
        "splicevi": splicevi_steps(model, args.steps, args.batch_size, args.torch_profile),
    }
    if not args.no_scvi:
        result["scvi"] = scvi_steps(rna, args.steps, args.batch_size)
        result["ratio"] = round(result["splicevi"]["step_ms"] / result["scvi"]["step_ms"], 2)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
