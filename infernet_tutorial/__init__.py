"""infernet_tutorial: inference networks (amortized variational inference), taught by running them.

    family(x, idx) -> q(z)          LocalFactors | MLPInferenceNetwork | ConvInferenceNetwork | LinearInferenceNetwork
                                    (GaussianInferenceNetwork: any Keras trunk with the loc and scale heads)
    elbo / iwae_bound               bounds on log p(x), per data point, in nats
    fit(objective, variables, ...)  the one training loop; train / infer_local / evaluate build on it

Names are imported lazily, so ``python -m infernet_tutorial --help`` answers before TensorFlow loads.
In a Jupyter kernel the package loads TensorFlow at once, through `startup`, so that a notebook's own
``import tensorflow`` after ``import infernet_tutorial`` finds it loaded and prints no start-up lines.
"""
import importlib as _importlib
import os as _os

from .settings import in_jupyter_kernel as _in_jupyter_kernel

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # fewer TensorFlow C++ start-up lines in notebooks

__version__ = "0.1.0"

_EXPORTS = {
    "data": ["Digits", "MNISTDataError", "binarize_once", "load_mnist", "mnist_source"],
    "device": ["device_summary"],
    "flows": ["FlowInferenceNetwork", "LocalFlow", "LocalFullCovGaussian", "flow_distribution"],
    "families": [
        "ConvInferenceNetwork", "Family", "GaussianInferenceNetwork", "LinearInferenceNetwork", "LocalFactors",
        "MLPInferenceNetwork", "crossover_points", "local_factors_bytes",
    ],
    "gaps": ["Gaps", "best_local", "decompose", "gap_table", "iwae_log_evidence", "mc_elbo", "quadrature_log_evidence"],
    "importance": ["ImportanceSample", "effective_sample_size", "gaussian_ess_fraction", "importance_sample"],
    "inference": ["DivergenceWarning", "History", "elbo_objective", "evaluate", "fit", "infer_local", "train"],
    "mixture": ["BernoulliMixture", "CategoricalInferenceNetwork", "LocalCategorical", "cluster_purity", "fit_mixture", "mixture_elbo"],
    "models": ["BernoulliDecoder", "LinearGaussian", "standard_normal_prior"],
    "objectives": ["elbo", "iwae_bound"],
    "posterior_grid": ["GridPosterior", "posterior_on_grid"],
    "settings": ["quick_mode", "set_random_seed"],
    "wake_sleep": ["rws_objective", "sleep_objective", "wake_objective", "wake_sleep_objective"],
    "widgets": ["amortization_explorer", "latent_explorer", "memory_explorer"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(_importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'infernet_tutorial' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if _in_jupyter_kernel():
    from . import startup  # noqa: F401,E402  (TensorFlow, its start-up lines filtered: the docstring)
