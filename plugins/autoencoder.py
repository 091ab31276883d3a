"""Plain autoencoder: the reference reconstruction-error detector."""
from pyod_ae_ext import hookimpl
from pyod_ae_ext.engine import AutoEncoderDetector, squared_error


class AutoEncoder(AutoEncoderDetector):
    """Plain MLP autoencoder scored by squared reconstruction error.

    Training minimises the mean over rows of ``||x - D(E(x))||^2`` (standardised
    features); the anomaly score of a row is the same quantity, so the score is a sum
    of per-feature squared errors and :meth:`feature_contributions` adds up to it.
    All parameters are the engine's (see :class:`pyod_ae_ext.engine.AutoEncoderDetector`).
    """

    def row_loss(self, net, x, target):
        _, recon = net(x)
        return squared_error(recon, target)

    def row_score(self, net, x):
        _, recon = net(x)
        return squared_error(recon, x)

    def row_contributions(self, net, x):
        _, recon = net(x)
        return (recon - x).pow(2)


@hookimpl
def register_detectors(register):
    register("ae", AutoEncoder, "Plain autoencoder, squared reconstruction error (reference)",
             aliases=("autoencoder",))
