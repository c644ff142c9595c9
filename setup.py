"""Install uncertainty_baselines: the library (datasets, models, layers, metrics, training helpers)."""
from setuptools import find_packages, setup

setup(
    name="uncertainty_baselines",
    version="0.1.0",
    description="Reproducible baselines for uncertainty and robustness in deep learning.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["uncertainty_baselines", "uncertainty_baselines.*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-datasets>=4.9.10",
        "keras>=3.13",
        "absl-py",
        "ml-collections",
        "numpy>=2",
        "scipy",
        "pillow",
        "matplotlib",  # the overview command's example grids
    ],
    extras_require={
        "jax": ["jax", "flax", "optax"],
        "torch": ["torch==2.13.0"],
        "text": ["keras-hub>=0.32", "transformers", "safetensors", "tokenizers"],
        # The sweeps' parallel-coordinates page (uncertainty_baselines.sweep); pinned because
        # the page inlines its script bundle.
        "report": ["hiplot==0.1.33"],
        "tests": [
            "pytest",
            "pytest-timeout",
            "pytest-xdist",
            "hypothesis",
            "scikit-learn",
            "torchmetrics",
            "mlxtend",
        ],
    },
)
