"""A third-party adscore plugin: a Mahalanobis-distance detector and one extra command."""
import click
import numpy as np
from pyod.models.base import BaseDetector
from sklearn.utils.validation import check_array, check_is_fitted

from pyod_ae_ext import hookimpl


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


@hookimpl
def register_detectors(register):
    register("mahalanobis", Mahalanobis, "Squared Mahalanobis distance (example plugin)")


@hookimpl
def register_commands(cli):
    @cli.command(name="example-hello")
    def hello():
        """Say hello from the example plugin."""
        click.echo("hello from adscore-example-plugin")
