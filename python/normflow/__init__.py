"""normflow: normalizing flows compiled from Rust, numpy in and out.

A flow is a simple base density pushed through a chain of invertible maps,
so that it can both sample and evaluate exact log-densities. Declare one in
normflow's flow DSL, fit it to data or to an unnormalised target, and use it
with scikit-learn's manners::

    import numpy as np, normflow
    flow = normflow.Flow("maf(5, hidden = 128) >> permute", seed=0)
    flow.fit(X, epochs=100)
    flow.log_prob(X_test)          # (n,)
    flow.sample(1000)              # (1000, D): one row per sample

Rows are samples, as everywhere in numpy.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _normflow
from ._normflow import SpecError

__all__ = ["Flow", "FlowSpec", "SpecError", "VariationalResult", "fit_variational"]
__version__ = "0.1.0"

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _dtype_name(dtype) -> str:
    """The canonical name of a float dtype, or a ValueError."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in _DTYPES:
        raise ValueError(f'dtype must be "float32" or "float64", got {dtype!r}')
    return name


def _rows(a, name: str, dtype: str, dim: Optional[int] = None) -> np.ndarray:
    """`a` as a C-ordered `(n, D)` array of `dtype`, checked.

    Integer arrays are converted. A 1-D array is refused: whether it is one
    sample or one coordinate of many samples is ambiguous.
    """
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    kind = arr.dtype.kind
    if kind not in "fiub":
        what = "real" if kind == "c" else "a numeric array"
        raise ValueError(f"{name} must be {what}, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got shape {arr.shape}"
        )
    n, d = arr.shape
    if n == 0:
        raise ValueError(f"{name} must have at least one row, got shape {arr.shape}")
    if dim is not None and d != dim:
        raise ValueError(
            f"{name} must have {dim} columns (shape (n, {dim})), got shape {arr.shape}"
        )
    want = _DTYPES[dtype]
    if arr.dtype != want or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=want)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} must be finite; {name}[{bad[0]}, {bad[1]}] is {arr[bad[0], bad[1]]}"
        )
    return arr


class FlowSpec:
    """A parsed flow spec: the text of normflow's flow DSL, checked.

    >>> FlowSpec.parse("maf(2) >> permute").text
    'maf(2) >> permute'

    A spec that does not parse raises :class:`SpecError` (a ``ValueError``)
    whose message points at the offending place with a caret.
    """

    def __init__(self, text: str):
        self.text = _normflow.parse_spec(str(text))

    @classmethod
    def parse(cls, text: str) -> "FlowSpec":
        """Parses ``text``; raises :class:`SpecError` on a bad spec."""
        return cls(text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"FlowSpec({self.text!r})"


class Flow:
    """A normalizing flow with scikit-learn's manners.

    Parameters
    ----------
    spec:
        The flow in normflow's DSL, e.g. ``"maf(5, hidden = 128) >> permute"``;
        parsed at once (a bad spec raises :class:`SpecError`).
    dtype:
        ``"float64"`` (default) or ``"float32"`` (faster).
    seed:
        Seed of the initial parameters, the shuffling and the validation split.

    The model is built by the first :meth:`fit`, for the dimension of its data
    (and of its contexts, for a conditional flow).
    """

    def __init__(self, spec: Union[str, FlowSpec], dtype="float64", seed: int = 0):
        self.spec = FlowSpec.parse(str(spec))
        self.dtype = _dtype_name(dtype)
        self.seed = int(seed)
        self._model = None
        self._dims = (0, 0)
        self.history_: List[Tuple[int, float, Optional[float]]] = []

    def _set_model(self, model) -> None:
        self._model = model
        self._dims = (model.dim, model.context_dim)

    # -- fitting -----------------------------------------------------------
    def fit(
        self,
        X,
        context=None,
        *,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        validation: float = 0.1,
        patience: Optional[int] = 10,
        standardize: bool = True,
        verbose: bool = False,
        callback: Optional[Callable[[int, float, Optional[float]], Optional[bool]]] = None,
        warm_start: bool = False,
    ) -> "Flow":
        """Fits the flow to the rows of ``X`` by maximum likelihood.

        ``context`` (one row per row of ``X``) makes the flow conditional,
        ``p(x | c)``. ``validation`` holds out that fraction of the rows for
        early stopping after ``patience`` epochs without improvement (the best
        parameters are kept); 0 trains for all epochs. ``standardize`` folds a
        per-column standardisation into the model. ``callback(epoch,
        train_nll, valid_nll)`` runs after every epoch and stops training by
        returning ``False``; ``verbose`` prints one line per epoch. Ctrl-C
        raises ``KeyboardInterrupt`` within a second and leaves the model at
        its last good parameters. The GIL is released while training.
        Refits from scratch unless ``warm_start``. Returns ``self``.
        """
        X = _rows(X, "X", self.dtype)
        n, dim = X.shape
        C = None
        context_dim = 0
        if context is not None:
            C = _rows(context, "context", self.dtype)
            if C.shape[0] != n:
                raise ValueError(
                    f"context must have one row per row of X ({n}), got shape {C.shape}"
                )
            context_dim = C.shape[1]
        if not (isinstance(epochs, (int, np.integer)) and epochs >= 1):
            raise ValueError(f"epochs must be an integer of at least 1, got {epochs!r}")
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be finite and positive, got {lr!r}")
        if not (0 <= validation < 1):
            raise ValueError(f"validation must be a fraction in [0, 1), got {validation!r}")
        rebuild = (
            self._model is None
            or not warm_start
            or self._model.dim != dim
            or self._model.context_dim != context_dim
        )
        if rebuild:
            self._set_model(
                _normflow.Model(self.spec.text, dim, context_dim, self.seed, self.dtype)
            )

        def observe(epoch, train_nll, valid_nll):
            if verbose:
                v = "" if valid_nll is None else f"  valid NLL {valid_nll:.4f}"
                print(f"epoch {epoch:4d}  train NLL {train_nll:.4f}{v}", file=sys.stderr, flush=True)
            if callback is not None and callback(epoch, train_nll, valid_nll) is False:
                return False
            return True

        self.history_ = self._model.fit(
            X,
            C,
            int(epochs),
            int(batch_size),
            float(lr),
            float(validation),
            None if patience is None else int(patience),
            self.seed,
            bool(standardize) and not (warm_start and not rebuild),
            observe,
        )
        return self

    # -- evaluation ----------------------------------------------------------
    def _fitted(self):
        if self._model is None:
            raise RuntimeError("this Flow is not fitted yet: call fit(X) first")
        return self._model

    def _context(self, context, n: int):
        context_dim = self._dims[1]
        if context_dim == 0:
            if context is not None:
                raise ValueError("this flow is not conditional; do not pass context")
            return None
        if context is None:
            raise ValueError(
                f"this flow is conditional on a context of {context_dim} columns; pass context"
            )
        arr = np.asarray(context)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        C = _rows(arr, "context", self.dtype, context_dim)
        if C.shape[0] == 1 and n > 1:
            C = np.ascontiguousarray(np.repeat(C, n, axis=0))
        elif C.shape[0] != n:
            raise ValueError(f"context must have 1 or {n} rows, got shape {C.shape}")
        return C

    def log_prob(self, X, context=None) -> np.ndarray:
        """``log p(x)`` of every row of ``X`` (or ``log p(x | c)``), shape ``(n,)``."""
        model = self._fitted()
        X = _rows(X, "X", self.dtype, self._dims[0])
        if self._dims[1] == 0 and context is None:
            return model.log_prob(X, None)
        return model.log_prob(X, self._context(context, X.shape[0]))

    def score_samples(self, X, context=None) -> np.ndarray:
        """The same as :meth:`log_prob` (scikit-learn's name)."""
        return self.log_prob(X, context)

    def score(self, X, y=None, context=None) -> float:
        """The mean log-likelihood of the rows of ``X``."""
        return float(np.mean(self.log_prob(X, context)))

    def sample(self, n: int, context=None, seed: Optional[int] = None) -> np.ndarray:
        """``n`` samples, one row each, shape ``(n, D)``.

        For a conditional flow, ``context`` is one row (``n`` samples at it)
        or ``n`` rows (one sample at each).
        """
        model = self._fitted()
        if not (isinstance(n, (int, np.integer)) and n >= 1):
            raise ValueError(f"n must be an integer of at least 1, got {n!r}")
        C = self._context(context, int(n))
        s = self.seed + 1 if seed is None else int(seed)
        return model.sample(int(n), C, s)

    # -- persistence -----------------------------------------------------------
    def to_json(self) -> str:
        """The model as JSON text (the command-line tool's model format)."""
        return self._fitted().to_json()

    @classmethod
    def from_json(cls, text: str, dtype="float64") -> "Flow":
        """A flow from JSON text written by :meth:`to_json` or the CLI."""
        model = _normflow.Model.from_json(text, _dtype_name(dtype))
        flow = cls(model.spec, dtype=dtype)
        flow._set_model(model)
        return flow

    def save(self, path) -> None:
        """Writes the model to ``path`` (JSON, the CLI's format)."""
        text = self.to_json()
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path, dtype="float64") -> "Flow":
        """Reads a model written by :meth:`save` or ``normflow fit``."""
        with open(os.fspath(path), encoding="utf-8") as f:
            return cls.from_json(f.read(), dtype)

    def __getstate__(self):
        return {
            "spec": self.spec.text,
            "dtype": self.dtype,
            "seed": self.seed,
            "model": None if self._model is None else self._model.to_json(),
            "history": self.history_,
        }

    def __setstate__(self, state):
        self.spec = FlowSpec.parse(state["spec"])
        self.dtype = state["dtype"]
        self.seed = state["seed"]
        self.history_ = state.get("history", [])
        model = state["model"]
        self._model = None
        self._dims = (0, 0)
        if model is not None:
            self._set_model(_normflow.Model.from_json(model, self.dtype))

    # -- scikit-learn's parameter protocol ------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {"spec": self.spec.text, "dtype": self.dtype, "seed": self.seed}

    def set_params(self, **params) -> "Flow":
        for k, v in params.items():
            if k == "spec":
                self.spec = FlowSpec.parse(v)
            elif k == "dtype":
                self.dtype = _dtype_name(v)
            elif k == "seed":
                self.seed = int(v)
            else:
                raise ValueError(f"unknown parameter {k!r}; expected spec, dtype or seed")
        return self

    @property
    def dim(self) -> int:
        """The dimension of the samples."""
        return self._fitted().dim

    @property
    def context_dim(self) -> int:
        """The dimension of the context (0 for an unconditional flow)."""
        return self._fitted().context_dim

    @property
    def num_params(self) -> int:
        """The number of trainable parameters."""
        return self._fitted().num_params

    def __repr__(self) -> str:
        return f"Flow({self.spec.text!r}, dtype={self.dtype!r}, seed={self.seed})"


class VariationalResult:
    """What :func:`fit_variational` returns: the fitted flow, the ELBO per
    step, and importance-sampling diagnostics of the fit (``log_z``,
    ``log_z_se``, ``ess``, ``pareto_k``; ``pareto_k`` below 0.5 is a good
    fit, from 0.7 an unreliable one)."""

    def __init__(self, flow: Flow, elbo: Sequence[float], diagnostics):
        self.flow = flow
        self.elbo = np.asarray(elbo)
        if diagnostics is None:
            self.log_z = self.log_z_se = self.ess = self.pareto_k = None
        else:
            self.log_z, self.log_z_se, self.ess, self.pareto_k = diagnostics

    def __repr__(self) -> str:
        return (
            f"VariationalResult(steps={len(self.elbo)}, elbo={self.elbo[-1]:.4f}, "
            f"log_z={self.log_z}, pareto_k={self.pareto_k})"
        )


def fit_variational(
    log_prob: Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]],
    dim: int,
    spec: Union[str, FlowSpec] = "realnvp(4, hidden = 32)",
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
) -> VariationalResult:
    """Fits a flow to an unnormalised density by maximising the ELBO.

    ``log_prob(x)`` takes an ``(n, dim)`` float64 array and returns the pair
    ``(log_p, grad)`` of shapes ``(n,)`` and ``(n, dim)`` (the gradient of
    ``log_p`` in ``x``, which reparameterised gradients need). The flow must
    be differentiable in its sampling direction (couplings, IAF, planar,
    radial; not MAF).
    """
    if not (isinstance(dim, (int, np.integer)) and dim >= 1):
        raise ValueError(f"dim must be an integer of at least 1, got {dim!r}")
    flow = Flow(spec, dtype="float64", seed=seed)
    flow._set_model(_normflow.Model(flow.spec.text, int(dim), 0, flow.seed, "float64"))
    elbo, diagnostics = flow._model.fit_variational(
        log_prob, int(steps), int(batch_size), float(lr), flow.seed
    )
    return VariationalResult(flow, elbo, diagnostics)
