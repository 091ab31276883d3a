"""Plain autoencoder: the reference reconstruction-error detector."""
from pyod_ae_ext.engine import AutoEncoderDetector, squared_error


class AutoEncoder(AutoEncoderDetector):
    """Plain MLP autoencoder scored by squared reconstruction error.

    Training minimises the mean over rows of ``||x - D(E(x))||^2`` (standardised
    features); the anomaly score of a row is the same quantity, so the score is a sum
    of per-feature squared errors and :meth:`feature_contributions` adds up to it.
    All parameters are the engine's (see :class:`pyod_ae_ext.engine.AutoEncoderDetector`),
    with two defaults of its own, chosen on the shared ADBench sets in both protocols
    (``benchmarks/members.py``, RESULTS "Members"): ``n_members="auto"`` and
    ``member_subsample="auto"``, i.e. 10 networks, each on 512 rows drawn by seed
    (every row when there are fewer), with the "mlp" backbone; one network with the
    others. ``n_members=1, latent_knn_weight=0`` is the single reference autoencoder.
    """

    def __init__(self, n_members="auto", member_subsample="auto", **engine_params):
        super().__init__(n_members=n_members, member_subsample=member_subsample, **engine_params)

    def row_loss(self, net, x, target):
        _, recon = net(x)
        return squared_error(recon, target)

    def row_score(self, net, x):
        _, recon = net(x)
        return squared_error(recon, x)

    def row_contributions(self, net, x):
        _, recon = net(x)
        return (recon - x).pow(2)
