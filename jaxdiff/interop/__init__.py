"""Weights in and out of other libraries: :mod:`jaxdiff.interop.diffusers` (UNet2DModel, DDPM/DDIM schedulers)."""
