"""Training plan and data splitter of SPLICEVI (scvi-tools subclasses via public APIs)."""

from __future__ import annotations

import torch
from scvi.dataloaders import DataSplitter
from scvi.module import Classifier
from scvi.train import AdversarialTrainingPlan


class SparseDataSplitter(DataSplitter):
    """A :class:`~scvi.dataloaders.DataSplitter` that keeps sparse minibatches sparse.

    scvi-tools' splitter turns sparse minibatch tensors dense after the device transfer; SpliceVI's
    module works on the stored entries of the splicing tensors, so they must reach it as sparse
    tensors (the gene counts are densified per minibatch inside the module).
    """

    def __init__(self, *args, **kwargs):
        kwargs["load_sparse_tensor"] = True
        super().__init__(*args, **kwargs)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Leave the batch as it is (sparse tensors stay sparse)."""
        return batch

    def val_dataloader(self):
        """The validation loader; an error that says what to change when the split left no cell for it.

        Lightning asks for it only when validation runs (early stopping, validation metrics); scvi-tools
        returns None when ``train_size`` rounds every cell into the training set (fewer than ~10 cells).
        """
        loader = super().val_dataloader()
        if loader is None:
            n_cells = len(self.train_idx) + len(self.val_idx)
            raise ValueError(
                f"no cell left for validation: {n_cells} cell(s) with train_size={self.train_size} all go to "
                "training; use more cells (at least 10), a smaller train_size, or train_size=1 without early "
                "stopping (CLI: --train-size 1 --no-early-stopping)"
            )
        return loader


class SplicingTrainingPlan(AdversarialTrainingPlan):
    """Adversarial training plan with gradient-norm clipping and a step LR scheduler.

    Parameters
    ----------
    module
        The :class:`~splicevi.module.SPLICEVAE`.
    lr_scheduler_type
        ``"plateau"`` (ReduceLROnPlateau when ``reduce_lr_on_plateau``) or ``"step"`` (StepLR with
        ``step_size`` epochs and factor ``lr_factor``).
    step_size
        Epochs between learning-rate drops of the step scheduler.
    gradient_clipping
        Clip the global gradient norm of the module before each optimizer step.
    gradient_clipping_max_norm
        The norm to clip to.
    **kwargs
        Passed to :class:`~scvi.train.AdversarialTrainingPlan`.
    """

    def __init__(
        self,
        module,
        *,
        lr_scheduler_type: str = "plateau",
        step_size: int = 10,
        gradient_clipping: bool = True,
        gradient_clipping_max_norm: float = 5.0,
        **kwargs,
    ):
        if lr_scheduler_type not in ("plateau", "step"):
            raise ValueError(f"lr_scheduler_type must be 'plateau' or 'step', got {lr_scheduler_type!r}")
        super().__init__(module, **kwargs)
        joint = getattr(module, "n_joint_latent", module.n_latent)
        if self.adversarial_classifier is not False and joint != module.n_latent:
            # The joint latent is wider than one modality's under 'concatenate'.
            self.adversarial_classifier = Classifier(
                n_input=joint, n_hidden=32, n_labels=self.n_output_classifier, n_layers=2, logits=True
            )
        self.lr_scheduler_type = lr_scheduler_type
        self.step_size = int(step_size)
        self.gradient_clipping = gradient_clipping
        self.gradient_clipping_max_norm = float(gradient_clipping_max_norm)
        self._step_scheduler = None

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip the module's gradients (manual optimisation bypasses Lightning's clipping)."""
        if self.gradient_clipping:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.gradient_clipping_max_norm)

    def configure_optimizers(self):
        """Optimizers of the adversarial plan, plus a StepLR on the module's optimizer if asked."""
        config = super().configure_optimizers()
        if self.lr_scheduler_type != "step":
            return config
        if isinstance(config, dict):
            optimizer = config["optimizer"]
        elif isinstance(config, tuple):
            optimizer = config[0][0]
        else:
            optimizer = config[0]
        self._step_scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.step_size, gamma=self.lr_factor
        )
        return config

    def on_train_epoch_end(self):
        """Step the step scheduler (manual optimisation: Lightning does not)."""
        if self._step_scheduler is not None:
            self._step_scheduler.step()
            return
        super().on_train_epoch_end()
