"""The MSI search space: interaction operations, genotypes, the derived MSINet, the supernet, TCM and SAM."""

from spaces.cost import count_macs, count_parameters, model_cost
from spaces.genotype import (
    NAMED_GENOTYPES,
    OPERATIONS,
    Genotype,
    canonical_operation,
    named_genotypes,
    random_genotype,
    resolve_genotype,
)
from spaces.msinet import (
    LoadReport,
    MSINet,
    MSINetOutput,
    build_from_checkpoint,
    build_msinet,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from spaces.operations import ChannelGate, CrossAttention, Exchange, Identity, build_operation
from spaces.sam import SAM_MODES, SAMScores, SpatialAlignModule, sam_loss
from spaces.supernet import MixedInteraction, Supernet
from spaces.tcm import (
    Architect,
    ClassificationHead,
    PrototypeMemory,
    classification_split,
    num_ids,
    tcm_split,
)

__all__ = [
    "NAMED_GENOTYPES",
    "OPERATIONS",
    "SAM_MODES",
    "Architect",
    "ChannelGate",
    "ClassificationHead",
    "CrossAttention",
    "Exchange",
    "Genotype",
    "Identity",
    "LoadReport",
    "MSINet",
    "MSINetOutput",
    "MixedInteraction",
    "PrototypeMemory",
    "SAMScores",
    "SpatialAlignModule",
    "Supernet",
    "build_from_checkpoint",
    "build_msinet",
    "build_operation",
    "canonical_operation",
    "classification_split",
    "count_macs",
    "count_parameters",
    "load_checkpoint",
    "load_weights",
    "model_cost",
    "named_genotypes",
    "num_ids",
    "random_genotype",
    "resolve_genotype",
    "sam_loss",
    "save_checkpoint",
    "tcm_split",
]
