"""Neural network building blocks: partial (EDDI) encoder, splicing decoder, modality mixing."""

from ._mixing import MODALITY_WEIGHTS, ModalityMixer
from ._partial_encoder import PartialEncoder
from ._splicing_decoder import SplicingDecoder

__all__ = ["MODALITY_WEIGHTS", "ModalityMixer", "PartialEncoder", "SplicingDecoder"]
