"""``splicevi train``: train a SpliceVI model on an assembled ``.h5mu``."""

from __future__ import annotations

import argparse
import json
import logging
import time

import pandas as pd

from splicevi._io import atomic_path

from ._common import configure, read_mudata, setup_model_data
from ._errors import UsageError

log = logging.getLogger("splicevi")


def check_model_kwargs(model_kwargs: dict) -> None:
    """Refuse constructor arguments that neither SPLICEVI nor its module takes, suggesting the near miss."""
    import difflib
    import inspect

    from splicevi import SPLICEVI

    known = set()
    for fn in (SPLICEVI.__init__, SPLICEVI._module_cls.__init__):
        known |= {
            name
            for name, par in inspect.signature(fn).parameters.items()
            if par.kind not in (par.VAR_KEYWORD, par.VAR_POSITIONAL)
        }
    # set by the model from the registered data, never by the user
    known -= {
        "self",
        "adata",
        "n_input_genes",
        "n_input_junctions",
        "n_batch",
        "n_obs",
        "n_labels",
        "junction_event_codes",
        "splicing_offset",
        "n_continuous_cov",
        "n_cats_per_cov",
    }
    for name in model_kwargs:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"--model-kwargs: {name!r} is not an argument of the SPLICEVI model; {hint}"
                "see the model reference for the accepted arguments"
            )


def history_table(history: dict) -> pd.DataFrame:
    """The model's training history (dict of one-column DataFrames) as one epoch × metric table."""
    frames = []
    for key, value in (history or {}).items():
        frame = pd.DataFrame(value)
        if frame.shape[1] == 1:
            frame.columns = [key]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(index=pd.Index([], name="epoch"))
    table = pd.concat(frames, axis=1)
    table.index.name = "epoch"
    return table


def _devices(text: str) -> int | str:
    """``--devices``: ``auto`` or a positive number of devices (Lightning's ``devices``)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}")
    return value


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi train``."""
    p = subparsers.add_parser(
        "train",
        help=help_text,
        description="Train SpliceVI on an .h5mu made by `splicevi assemble`; save the model and its history.",
    )
    p.add_argument("--mdata", required=True, help="input .h5mu (splicing, and rna when gene counts exist)")
    p.add_argument("--batch-key", default=None, help="cell annotation used as the batch covariate")
    p.add_argument(
        "--model-kwargs",
        default="{}",
        help="SPLICEVI constructor arguments as JSON, e.g. '{\"n_latent\": 10}'",
    )
    p.add_argument("--max-epochs", type=int, default=500, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (cells)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate")
    p.add_argument(
        "--early-stopping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop when the validation reconstruction loss stops improving",
    )
    p.add_argument(
        "--early-stopping-patience", type=int, default=50, help="epochs without improvement before stopping"
    )
    p.add_argument(
        "--train-size", type=float, default=0.9, help="fraction of cells for training (rest: validation)"
    )
    p.add_argument(
        "--n-epochs-kl-warmup", type=int, default=50, help="epochs over which the KL term is warmed up"
    )
    p.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    p.add_argument(
        "--devices", type=_devices, default="auto", help="number of devices of the accelerator, or auto"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of training")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch")
    p.add_argument("--out-model", required=True, help="output model directory")
    p.add_argument("--out-history", required=True, help="output TSV of the training history (epoch × metric)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Train and save."""
    configure(args.threads, args.seed)
    try:
        model_kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as err:
        raise UsageError(f"--model-kwargs is not valid JSON: {err}") from None
    if not isinstance(model_kwargs, dict):
        raise UsageError("--model-kwargs must be a JSON object")
    if not 0 < args.train_size <= 1:
        raise UsageError(f"--train-size must be in (0, 1], got {args.train_size}")

    from splicevi import SPLICEVI

    mdata = read_mudata(args.mdata)
    log.info("data: %s", ", ".join(f"{k} {m.n_obs}×{m.n_vars}" for k, m in mdata.mod.items()))
    setup_model_data(mdata, args.batch_key)
    check_model_kwargs(model_kwargs)
    try:
        model = SPLICEVI(mdata, **model_kwargs)
    except TypeError as err:  # a known argument with a value of the wrong type
        raise UsageError(f"--model-kwargs {args.model_kwargs}: {err}") from None
    log.info("model: %s", model)
    early_stopping = args.early_stopping
    if early_stopping and args.train_size >= 1:
        log.warning("no validation cells (--train-size 1): early stopping disabled")
        early_stopping = False
    start = time.perf_counter()
    model.train(
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        accelerator=args.accelerator,
        devices=args.devices,
        train_size=args.train_size,
        validation_size=None if args.train_size < 1 else 0.0,
        early_stopping=early_stopping,
        early_stopping_patience=args.early_stopping_patience,
        n_epochs_kl_warmup=args.n_epochs_kl_warmup,
        # validation metrics every epoch (for the training curves), whenever there are validation cells
        check_val_every_n_epoch=1 if args.train_size < 1 else None,
    )
    log.info("trained in %.1f s", time.perf_counter() - start)
    history = history_table(model.history)
    if history.empty:
        raise RuntimeError("training produced no history (no epoch ran?)")
    with atomic_path(args.out_model, suffix="") as tmp:
        model.save(str(tmp), overwrite=True, save_anndata=False)
    with atomic_path(args.out_history) as tmp:
        history.to_csv(tmp, sep="\t")
    last = history.iloc[-1]
    log.info(
        "epochs: %d; last: %s", len(history), ", ".join(f"{k}={v:.4g}" for k, v in last.dropna().items())
    )
    return 0
