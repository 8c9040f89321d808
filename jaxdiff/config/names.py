"""The names a config may use, read from the registries when first needed (importing them loads jax)."""
from __future__ import annotations

__all__ = []


def _degradations():
    from jaxdiff.degradations import DEGRADATIONS  # noqa: PLC0415

    return DEGRADATIONS


def _schedules():
    from jaxdiff.processes.schedules import SCHEDULES  # noqa: PLC0415

    return SCHEDULES


def _correctors():
    from jaxdiff.sampling import CORRECTORS  # noqa: PLC0415

    return CORRECTORS


def _spacings():
    from jaxdiff.sampling import SPACING_NAMES  # noqa: PLC0415

    return SPACING_NAMES


def _predictions():
    from jaxdiff.parameterization import PREDICTIONS  # noqa: PLC0415

    return PREDICTIONS


def _t_samplings():
    from jaxdiff.processes.tsampling import T_SAMPLINGS  # noqa: PLC0415

    return T_SAMPLINGS


def _loss_kinds():
    from jaxdiff.losses import LOSS_KINDS  # noqa: PLC0415

    return LOSS_KINDS


def _weightings():
    from jaxdiff.losses import WEIGHTINGS  # noqa: PLC0415

    return WEIGHTINGS


def _dtypes():
    from jaxdiff.models.unet import DTYPES  # noqa: PLC0415

    return DTYPES


def _model_fields() -> tuple:
    from jaxdiff.models.unet import MODEL_FIELDS  # noqa: PLC0415

    return tuple(f"model.{k}" for k in MODEL_FIELDS)
