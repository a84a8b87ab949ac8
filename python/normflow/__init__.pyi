import os
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class SpecError(ValueError): ...

class FlowSpec:
    text: str
    def __init__(self, text: str) -> None: ...
    @classmethod
    def parse(cls, text: str) -> "FlowSpec": ...

class Flow:
    spec: FlowSpec
    dtype: str
    seed: int
    history_: List[Tuple[int, float, Optional[float]]]
    def __init__(self, spec: Union[str, FlowSpec], dtype: object = "float64", seed: int = 0) -> None: ...
    def fit(
        self,
        X: npt.ArrayLike,
        context: Optional[npt.ArrayLike] = None,
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
    ) -> "Flow": ...
    def log_prob(self, X: npt.ArrayLike, context: Optional[npt.ArrayLike] = None) -> np.ndarray: ...
    def score_samples(self, X: npt.ArrayLike, context: Optional[npt.ArrayLike] = None) -> np.ndarray: ...
    def score(self, X: npt.ArrayLike, y: object = None, context: Optional[npt.ArrayLike] = None) -> float: ...
    def sample(self, n: int, context: Optional[npt.ArrayLike] = None, seed: Optional[int] = None) -> np.ndarray: ...
    def to_json(self) -> str: ...
    @classmethod
    def from_json(cls, text: str, dtype: object = "float64") -> "Flow": ...
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None: ...
    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], dtype: object = "float64") -> "Flow": ...
    def get_params(self, deep: bool = True) -> dict: ...
    def set_params(self, **params: object) -> "Flow": ...
    @property
    def dim(self) -> int: ...
    @property
    def context_dim(self) -> int: ...
    @property
    def num_params(self) -> int: ...

class VariationalResult:
    flow: Flow
    elbo: np.ndarray
    log_z: Optional[float]
    log_z_se: Optional[float]
    ess: Optional[float]
    pareto_k: Optional[float]

def fit_variational(
    log_prob: Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]],
    dim: int,
    spec: Union[str, FlowSpec] = "realnvp(4, hidden = 32)",
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
) -> VariationalResult: ...


