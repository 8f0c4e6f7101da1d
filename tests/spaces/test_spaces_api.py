"""The package's public surface: what trials and platform code import from ``spaces``."""

from pathlib import Path

import spaces


def test_public_api_is_re_exported():
    for name in ["Genotype", "resolve_genotype", "named_genotypes", "NAMED_GENOTYPES", "random_genotype",
                 "build_msinet", "MSINet", "MSINetOutput", "model_cost", "load_weights", "LoadReport",
                 "save_checkpoint", "build_from_checkpoint", "Supernet", "tcm_split", "classification_split",
                 "PrototypeMemory", "ClassificationHead", "Architect", "sam_loss"]:
        assert hasattr(spaces, name), name
    assert set(spaces.__all__) <= set(dir(spaces))


def test_genotype_module_does_not_need_torch():
    """Configs are validated in the driver, which should not have to import torch for it."""
    source = Path(spaces.genotype.__file__).read_text()
    assert "import torch" not in source and "from torch" not in source
