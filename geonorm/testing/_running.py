"""How the checks call ``f``: cast copies of its modules, a fixed seed, named dtype errors.

A module is deep-copied and cast to the check's dtype. A plain function that
wraps modules (a closure over a model, a bound method, a ``functools.partial``)
is rebuilt around cast copies of them, so the caller's objects are never
touched and a ``dtype=torch.float32`` check does not end in a raw dtype
mismatch. Modules the function reaches only through globals cannot be
copied; if the call then fails with a dtype mismatch, the error says so.

The dtypes the modules' floating parameters and buffers had before the cast
are recorded: a model built in float32 and checked in float64 keeps the
float32 rounding of its constants (e3nn's Clebsch–Gordan buffers), and the
check's default tolerance accounts for it (:func:`geonorm._numerics.cast_constants_rtol`).
"""

from __future__ import annotations

import copy
import functools
import types
from typing import Any, Callable, Sequence

import torch
from torch import nn

Tensor = torch.Tensor

__all__ = ["Runner"]



def _is_dtype_mismatch(err: RuntimeError) -> bool:
    low = str(err).lower()
    return "dtype" in low or "scalar type" in low or ("double" in low and "float" in low)


def _cast_module(m: nn.Module, dtype: torch.dtype) -> nn.Module:
    return copy.deepcopy(m).to(dtype)


def _float_dtypes(m: nn.Module) -> set[torch.dtype]:
    """Floating dtypes of the parameters and buffers, float64 ones that hold float32 values counted as float32.

    A model built in float32 and cast with ``.double()`` by its user has
    float64 tensors whose values are all float32 numbers. A float64 tensor
    counts as float32 when every entry survives a round trip through
    float32 and some entry does not survive one through float16 (so tensors
    of simple numbers such as 0, 1 and 0.5 are not mistaken for rounded ones).
    """
    out, f64 = set(), []
    for t in list(m.parameters()) + list(m.buffers()):
        if t.is_floating_point():
            if t.dtype == torch.float64 and t.numel():
                f64.append(t.detach())
            else:
                out.add(t.dtype)
    if f64:
        flat = torch.cat([t.reshape(-1).cpu() for t in f64])
        as32 = bool((flat.float().double() == flat).all())
        detailed = bool((flat.half().double() != flat).any())
        out.add(torch.float32 if as32 and detailed else torch.float64)
    return out


def _rebuild(f: Callable, dtype: torch.dtype, found: list[nn.Module]) -> Callable:
    """``f`` with every module it closes over replaced by a cast copy (recorded in ``found``)."""
    if isinstance(f, nn.Module):
        found.append(f)
        return _cast_module(f, dtype)
    if isinstance(f, functools.partial):
        args = [_rebuild(a, dtype, found) if isinstance(a, nn.Module) else a for a in f.args]
        kw = {k: _rebuild(v, dtype, found) if isinstance(v, nn.Module) else v
              for k, v in f.keywords.items()}
        return functools.partial(_rebuild(f.func, dtype, found), *args, **kw)
    if isinstance(f, types.MethodType) and isinstance(f.__self__, nn.Module):
        found.append(f.__self__)
        return types.MethodType(f.__func__, _cast_module(f.__self__, dtype))
    if isinstance(f, types.FunctionType) and f.__closure__:
        cells, changed = [], False
        for cell in f.__closure__:
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned later)
                cells.append(cell)
                continue
            if isinstance(value, nn.Module):
                found.append(value)
                cells.append(types.CellType(_cast_module(value, dtype)))
                changed = True
            else:
                cells.append(cell)
        if changed:
            g = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                                   tuple(cells))
            g.__kwdefaults__ = f.__kwdefaults__
            return g
    return f


def _lower(dtypes: set[torch.dtype], dtype: torch.dtype) -> torch.dtype | None:
    """The least precise floating dtype in ``dtypes`` if it is less precise than ``dtype``."""
    eps = torch.finfo(dtype).eps
    lower = [d for d in dtypes if torch.finfo(d).eps > eps]
    return max(lower, key=lambda d: torch.finfo(d).eps) if lower else None


class Runner:
    """Calls ``f`` on its cast copy with a fixed RNG seed; fresh module copy per call.

    Attributes
    ----------
    is_module : bool
        Whether ``f`` is an ``nn.Module`` (checked in train and eval mode).
    cast_from : torch.dtype or None
        The least precise floating dtype the modules' parameters and buffers
        had before they were cast up to ``dtype`` (``None`` if none was less
        precise).
    """

    def __init__(self, f: Callable, dtype: torch.dtype) -> None:
        if not callable(f):
            raise TypeError(f"f: expected a callable or an nn.Module, got {type(f).__name__}")
        self.dtype = dtype
        found: list[nn.Module] = []
        self.is_module = isinstance(f, nn.Module)
        self.f = _rebuild(f, dtype, found)
        dtypes = set().union(*(_float_dtypes(m) for m in found)) if found else set()
        self.cast_from = _lower(dtypes, dtype)
        self.modules_found = len(found)

    def __call__(self, args: Sequence[Any], mode: str, seed: int, call: Callable) -> Any:
        """Run ``call(f, args)`` under ``seed`` (a module in ``mode``)."""
        devices = sorted({a.device.index or 0 for a in args if isinstance(a, Tensor) and a.is_cuda})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            f = self.f
            if self.is_module:
                f = copy.deepcopy(f)
                f.train(mode == "train")
            try:
                return call(f, args)
            except RuntimeError as err:
                text = str(err)
                if _is_dtype_mismatch(err):
                    raise TypeError(
                        f"f: raised a dtype mismatch while the check ran in "
                        f"{str(self.dtype).replace('torch.', '')} ({text.splitlines()[0]}); "
                        f"the check cast {self.modules_found} module(s) it could reach (the "
                        "module itself, a closure over a module, a bound method, a partial); "
                        "a model reached through a global is not cast: pass the module, close "
                        "over it, or build it in the check's dtype"
                    ) from err
                raise
