"""Stable symmetric-matrix linear algebra with Daleckii–Krein backward passes.

Every eigen-function goes through one routine,
:func:`~geonorm.linalg.apply_spectral`, whose backward is exact and finite
for repeated eigenvalues (raw ``torch.linalg.eigh`` autograd is not).
"""

from .cholesky import cholesky, cholesky_exp, cholesky_log
from .eig import apply_spectral, eigh, sym
from .functions import (
    sym_expm,
    sym_func,
    sym_invsqrtm,
    sym_logm,
    sym_powm,
    sym_sqrtm,
    sym_sqrtm_invsqrtm,
)
from .lyapunov import solve_lyapunov
from .vectorize import sym_to_vec, vec_to_sym
from .power import sym_powm_tensor
from .spectral import (
    SpectralFunction,
    clamped,
    identity_function,
    exp_function,
    log_function,
    power_function,
)

__all__ = [
    "apply_spectral",
    "cholesky",
    "cholesky_exp",
    "cholesky_log",
    "clamped",
    "eigh",
    "exp_function",
    "identity_function",
    "log_function",
    "power_function",
    "solve_lyapunov",
    "SpectralFunction",
    "sym",
    "sym_expm",
    "sym_func",
    "sym_invsqrtm",
    "sym_logm",
    "sym_powm",
    "sym_powm_tensor",
    "sym_sqrtm",
    "sym_sqrtm_invsqrtm",
    "sym_to_vec",
    "vec_to_sym",
]
