"""Score / denoiser networks. ``make_unet(config.model, image_size=…, in_channels=…, out_channels=…)``."""
from jaxdiff.models.unet import (
    BENCH32_DIFFUSERS_PARAMS,
    DTYPES,
    MODEL_FIELDS,
    AttnBlock,
    Downsample,
    ResBlock,
    UNet,
    Upsample,
    bench32_config,
    make_unet,
    param_count,
    timestep_embedding,
    validate_unet_config,
)

__all__ = [
    "BENCH32_DIFFUSERS_PARAMS",
    "DTYPES",
    "MODEL_FIELDS",
    "AttnBlock",
    "Downsample",
    "ResBlock",
    "UNet",
    "Upsample",
    "bench32_config",
    "make_unet",
    "param_count",
    "timestep_embedding",
    "validate_unet_config",
]
