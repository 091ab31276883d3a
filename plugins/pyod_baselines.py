"""PyOD's classic detectors, registered by name for baselines and ensembles.

The registered classes are PyOD's own, so ``make_detector("iforest", n_estimators=200)``
returns a plain :class:`pyod.models.iforest.IForest` with PyOD's parameters.
"""
from pyod_ae_ext import hookimpl

# name: (module, class, summary, aliases)
BASELINES = {
    "iforest": ("pyod.models.iforest", "IForest", "PyOD Isolation Forest", ("isolation-forest",)),
    "ecod": ("pyod.models.ecod", "ECOD", "PyOD ECOD: empirical-CDF outlier detection", ()),
    "copod": ("pyod.models.copod", "COPOD", "PyOD COPOD: copula-based outlier detection", ()),
    "knn": ("pyod.models.knn", "KNN", "PyOD k-nearest-neighbour distance", ()),
    "lof": ("pyod.models.lof", "LOF", "PyOD Local Outlier Factor", ()),
    "pca": ("pyod.models.pca", "PCA", "PyOD PCA reconstruction (weighted projection distance)", ()),
    "ocsvm": ("pyod.models.ocsvm", "OCSVM", "PyOD one-class SVM", ("one-class-svm",)),
    "hbos": ("pyod.models.hbos", "HBOS", "PyOD histogram-based outlier score", ()),
    "mcd": ("pyod.models.mcd", "MCD", "PyOD minimum covariance determinant", ()),
    "loda": ("pyod.models.loda", "LODA", "PyOD lightweight on-line detector of anomalies", ()),
    "inne": ("pyod.models.inne", "INNE", "PyOD isolation using nearest-neighbour ensembles", ()),
    "gmm": ("pyod.models.gmm", "GMM", "PyOD Gaussian mixture model likelihood", ()),
}


@hookimpl
def register_detectors(register):
    for name, (module, class_name, summary, aliases) in BASELINES.items():
        # by path: PyOD is imported when a baseline is built, not when detectors are listed
        register(name, f"{module}:{class_name}", summary, aliases=aliases)
