"""The detector families shipped with pyod-ae-ext, as the ``adscore`` entry points name them.

Each family is one plugin (``autoencoder``, ``toll``, ...), registered through the
entry-point group exactly as a third-party plugin is, by ``"module:Class"`` path: listing
detectors imports neither torch nor the families' modules, and a class is imported the
first time it is built. This module is the only place the shipped detectors are
registered; the families' modules (``pyod_ae_ext.plugins.toll``, ...) hold their math
and nothing else.
"""
from .hookspecs import hookimpl


class BuiltinFamily:
    """A plugin object registering ``(name, "module:Class", summary, aliases)`` entries lazily."""

    def __init__(self, *detectors):
        self.detectors = detectors

    @hookimpl
    def register_detectors(self, register):
        for name, path, summary, aliases in self.detectors:
            register(name, path, summary, aliases=aliases)


_PLUGINS = "pyod_ae_ext.plugins"
_RDAE_PAPER = "(Zhou & Paffenroth, KDD 2017)"

autoencoder = BuiltinFamily(
    ("ae", f"{_PLUGINS}.autoencoder:AutoEncoder", "Plain autoencoder, squared reconstruction error (reference)",
     ("autoencoder",)))
toll = BuiltinFamily(
    ("toll", f"{_PLUGINS}.toll:Toll",
     "Toll: autoencoder with a latent-norm penalty in loss and score (Ghafourian et al. 2024)", ()))
rdae = BuiltinFamily(
    ("rdae-l1", f"{_PLUGINS}.rdae:RDAEL1", f"Robust deep autoencoder, l1-sparse corrupted entries {_RDAE_PAPER}",
     ("rdae_l1",)),
    ("rdae-l21", f"{_PLUGINS}.rdae:RDAEL21",
     f"Robust deep autoencoder, l2,1 group-sparse outlier rows {_RDAE_PAPER}", ("rdae", "rdae_l21")))
vae = BuiltinFamily(
    ("vae", f"{_PLUGINS}.vae:VAE", "Variational autoencoder: reconstruction probability (An & Cho 2015), "
     "reconstruction error or latent Wasserstein score (Pereira & Silveira 2018)", ()))
vrae = BuiltinFamily(
    ("vrae", f"{_PLUGINS}.vrae:VRAE", "Variational recurrent autoencoder (Fabius & van Amersfoort 2015): LSTM/GRU "
     "VAE, reconstruction probability or latent Wasserstein score", ()))
ksparse = BuiltinFamily(
    ("ksparse-ae", f"{_PLUGINS}.ksparse:KSparseAE",
     "k-sparse autoencoder: top-k linear code, reconstruction error (Makhzani & Frey 2013)",
     ("ksparse", "k-sparse-ae")))
deep_ocsvm = BuiltinFamily(
    ("deep-ocsvm", f"{_PLUGINS}.deep_ocsvm:DeepOCSVM", "AE-1SVM: autoencoder + one-class SVM on random Fourier "
     "features, trained jointly (Nguyen & Vien 2018)", ("ae-1svm",)))
deep_svdd = BuiltinFamily(
    ("deep-svdd", f"{_PLUGINS}.deep_svdd:DeepSVDD", "Deep SVDD: bias-free network pulling normal data to a fixed "
     "centre, one-class or soft-boundary objective (Ruff et al. 2018)", ()))
ensemble = BuiltinFamily(
    ("ensemble", "pyod_ae_ext.ensemble:Ensemble", "Ensemble of registered detectors: normalised scores combined "
     "by mean, max, median, AOM, MOA or weighted mean", ()))
