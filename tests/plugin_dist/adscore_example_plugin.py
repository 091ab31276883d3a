"""A third-party adscore plugin: a Mahalanobis-distance detector, an autoencoder family built
on the engine's public hooks only, and one extra command."""
import click
import torch
import numpy as np
from pyod.models.base import BaseDetector
from sklearn.utils.validation import check_array, check_is_fitted

from pyod_ae_ext import hookimpl
from pyod_ae_ext.engine import AutoEncoderDetector, squared_error
from pyod_ae_ext.validation import check_number
from pyod_ae_ext.training import Callback


class Mahalanobis(BaseDetector):
    """Squared Mahalanobis distance to the training mean."""

    def __init__(self, contamination=0.1, ridge=1e-6):
        super().__init__(contamination=contamination)
        self.ridge = ridge

    def fit(self, X, y=None):
        X = check_array(X)
        self.mean_ = X.mean(axis=0)
        covariance = np.cov(X, rowvar=False) + self.ridge * np.eye(X.shape[1])
        self.precision_ = np.linalg.inv(covariance)
        self.decision_scores_ = self.decision_function(X)
        self._process_decision_scores()
        return self

    def decision_function(self, X):
        check_is_fitted(self, ["precision_"])
        centred = check_array(X) - self.mean_
        return np.einsum("ij,jk,ik->i", centred, self.precision_, centred)


class NoiseDecay(Callback):
    """Halve the training noise every ``every`` epochs (a schedule, as a callback)."""

    def __init__(self, detector, every=5):
        self.detector, self.every = detector, every

    def on_train_begin(self, loop):
        self.detector.noise_ = float(self.detector.noise)

    def on_epoch_end(self, loop, epoch, logs):
        if (epoch + 1) % self.every == 0:
            self.detector.noise_ /= 2


class ShrinkingNoiseAE(AutoEncoderDetector):
    """Denoising autoencoder whose input noise shrinks during training; squared error score."""

    def __init__(self, noise=0.5, **engine_params):
        super().__init__(**engine_params)
        self.noise = noise

    def check_family_params(self):
        check_number("noise", self.noise, 0)

    def row_loss(self, net, x, target):
        noisy = x + self.noise_ * torch.randn_like(x)
        return squared_error(net(noisy)[1], target)

    def row_score(self, net, x):
        return squared_error(net(x)[1], x)

    def row_contributions(self, net, x):
        return (net(x)[1] - x).pow(2)

    def training_callbacks(self, X):
        return [NoiseDecay(self)]

    def extra_fitted_state(self):
        return {"final_noise": self.noise_}, {}

    def restore_extra_fitted_state(self, meta, tensors):
        self.noise_ = float(meta["final_noise"])


@hookimpl
def register_detectors(register):
    register("mahalanobis", Mahalanobis, "Squared Mahalanobis distance (example plugin)")
    register("shrinking-noise-ae", ShrinkingNoiseAE, "Denoising AE with a noise schedule (example plugin)")


@hookimpl
def register_commands(cli):
    @cli.command(name="example-hello")
    def hello():
        """Say hello from the example plugin."""
        click.echo("hello from adscore-example-plugin")
