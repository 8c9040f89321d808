"""Score / denoiser networks. ``make_unet(config.model, image_size=…, in_channels=…, out_channels=…)``."""
from jaxdiff.models.unet import (
    DTYPES,
    MODEL_FIELDS,
    AttnBlock,
    Downsample,
    ResBlock,
    UNet,
    Upsample,
    make_unet,
    param_count,
    timestep_embedding,
    validate_unet_config,
)

__all__ = [
    "DTYPES",
    "MODEL_FIELDS",
    "AttnBlock",
    "Downsample",
    "ResBlock",
    "UNet",
    "Upsample",
    "make_unet",
    "param_count",
    "timestep_embedding",
    "validate_unet_config",
]
