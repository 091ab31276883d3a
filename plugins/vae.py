"""Variational autoencoder scored by reconstruction probability, error or latent Wasserstein distance."""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pyod_ae_ext.engine import AutoEncoderDetector
from pyod_ae_ext.validation import check_choice, check_number
from pyod_ae_ext.errors import DataError
from pyod_ae_ext.training import Callback

_LOG_2PI = math.log(2.0 * math.pi)
# Bounds on the encoder's log-variance: keeps exp() finite without touching ordinary values.
_ENCODER_LOGVAR_RANGE = (-20.0, 10.0)
# Elements (rows x reference posteriors) per chunk of the Wasserstein distance matrix.
_WASSERSTEIN_CHUNK_ELEMENTS = 1 << 22
# Values of Bernoulli targets may exceed [0, 1] by this much (float round-off of the scaler).
_BERNOULLI_TOLERANCE = 1e-6


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class VAENet(nn.Module):
    """Gaussian encoder and Gaussian or Bernoulli decoder.

    ``encoder`` maps x to ``[mu, log sigma^2]`` (2 x latent_dim columns); ``decoder``
    maps z to the decoder's mean (Gaussian) or logits (Bernoulli), followed, for the
    per-sample variance, by one raw variance column per feature.
    """

    def __init__(self, encoder, decoder, n_features, latent_dim, likelihood="gaussian", variance="feature",
                 min_variance=1e-3):
        super().__init__()
        self.n_features = n_features
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.variance = variance
        self.min_variance = min_variance
        per_sample = likelihood == "gaussian" and variance == "sample"
        self.encoder = encoder
        self.decoder = decoder
        if likelihood == "gaussian" and variance == "feature":
            # set at the end of fitting to the maximum-likelihood value (VAE._set_feature_variance)
            self.register_buffer("feature_variance", torch.ones(n_features))
        elif per_sample and isinstance(self.decoder[-1], nn.Linear):
            # bias the variance column so the initial variances are about 1
            last = self.decoder[-1]
            with torch.no_grad():
                last.bias[n_features:].add_(_inverse_softplus(1.0 - min_variance))

    def encode(self, x):
        """Posterior parameters ``(mu, log sigma^2)`` of q(z|x)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(*_ENCODER_LOGVAR_RANGE)

    def decode(self, z):
        """``(mean or logits, variance or None)`` of p(x|z)."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return out, None
        if self.variance == "sample":
            mean, raw = out.split(self.n_features, dim=1)
            return mean, self.min_variance + F.softplus(raw)
        return out, self.feature_variance.expand_as(out)

    def forward(self, x):
        """Return (posterior mean, decoder mean or logits at the posterior mean)."""
        mu, _ = self.encode(x)
        return mu, self.decode(mu)[0]


class VAE(AutoEncoderDetector):
    """Variational autoencoder (Kingma & Welling 2014) for anomaly detection.

    Encoder q(z|x) = N(mu(x), diag sigma^2(x)), sampled with the reparameterisation
    trick z = mu + sigma * eps; prior p(z) = N(0, I); decoder p(x|z) either Gaussian
    N(m(z), diag v) with a learned variance (one per feature, or one per feature and
    row produced by a decoder head) or Bernoulli with mean sigmoid(logits(z)). Training
    minimises the negative beta-ELBO per row (Kingma & Welling 2014, eq. 10; Higgins
    et al. 2017, eq. 4) with one Monte Carlo draw per row and step::

        loss(x) = -log p(x | z) + beta * KL(q(z|x) || N(0, I)),    z ~ q(z|x)
        KL = 1/2 * sum_k (mu_k^2 + sigma_k^2 - log sigma_k^2 - 1)
        -log N(x | m, v) = 1/2 * sum_j (log(2 pi) + log v_j + (x_j - m_j)^2 / v_j)

    Scores (higher = more anomalous), each with ``n_samples`` draws
    z_l = mu(x) + sigma(x) * eps_l ~ q(z|x), where eps_1..eps_L are fixed by
    ``random_state`` and shared by every row (common random numbers), so a row's score
    depends on the row alone, and repeated calls agree:

    ``"reconstruction_probability"`` (An & Cho 2015, Algorithm 4, in log form)
        ``-(1/L) sum_l log p(x | z_l)``: the negative Monte Carlo estimate of the
        expected log-likelihood of x under the decoder, a true log-density with the
        variance term and the ``log(2 pi)`` constants (a log-probability for the
        Bernoulli decoder).
    ``"reconstruction_error"``
        ``(1/L) sum_l ||x - E[p(x | z_l)]||_1``, the L1 distance to the decoder mean.
    ``"wasserstein"`` (Pereira & Silveira 2018, section III-C)
        The median, over ``n_reference`` training rows x_i drawn at fit time, of the
        squared 2-Wasserstein distance between the posteriors q(z|x) and q(z|x_i); for
        diagonal Gaussians ``||mu - mu_i||^2 + ||sigma - sigma_i||^2``. This score is
        closed-form and does not use ``n_samples``. The reference posteriors (their mu
        and sigma) are computed after training and saved with the model.

    Units: the engine standardises every feature, so for the Gaussian decoder the
    reconstruction probability is the log-density of the *standardised* row. The
    log-density of the row in its original units is that minus ``sum(log scale_)``,
    a constant that does not change any ranking; :meth:`reconstruction_log_probability`
    with ``original_units=True`` returns it.

    Parameters
    ----------
    score_method : {"reconstruction_probability", "reconstruction_error", "wasserstein"}
        The anomaly score, see above. In pyod-ae-ext 0.1.0 this parameter was called
        ``score``, which hid scikit-learn's ``score`` method (a pipeline ending in the
        VAE could not be scored); ``VAE(score=...)``, ``set_params(score=...)`` and
        model files saved with ``score`` still work, the first two with a
        ``FutureWarning``.
    beta : float, default 1.0
        Weight of the KL term (1 is the ELBO).
    likelihood : {"gaussian", "bernoulli"}, default "gaussian"
        Decoder distribution. ``"bernoulli"`` needs every value of X in [0, 1] (pixel
        intensities, binary features): its targets are the rows in their *original*
        units (the engine's standardisation is undone inside the likelihood, while
        the encoder still sees standardised inputs), and fitting or scoring data
        outside [0, 1] raises a :class:`~pyod_ae_ext.errors.DataError`. Fractional
        values use the cross-entropy ``x log p + (1 - x) log(1 - p)`` as the paper's
        Bernoulli decoder does (Kingma & Welling 2014, appendix C.1). With the engine's
        ``standardize=False`` the encoder sees the raw values too.
    variance : {"feature", "sample"}, default "feature"
        Gaussian decoder variance. ``"feature"``: one variance per feature, learned
        in closed form: in each training step it is the batch's maximum-likelihood
        value, the mean squared residual of that feature (the calibrated decoder,
        "optimal sigma", of Rybkin et al. 2021, per feature, held fixed in the
        gradient), and after training it is set to the exact maximiser of the training
        objective given the networks, the mean over all training rows of
        E_q[(x_j - m_j(z))^2] with ``n_samples`` draws. (A variance learned by
        gradient steps moves by about ``lr`` in log-space per step, far too slowly to
        reach the small variances of well-predicted features; the mean network then
        learns under wrong weights.) ``"sample"``: a decoder head outputs a variance
        per feature for every row (heteroscedastic, as in An & Cho 2015), learned by
        gradient, so it needs more epochs or a larger ``lr``. Ignored by the
        Bernoulli decoder.
    min_variance : float, default 1e-3
        Floor of the decoder variance in standardised units (v = min_variance +
        softplus(raw), or the clamp of the closed-form value); keeps the likelihood
        bounded on features the decoder reproduces exactly (constants, duplicates).
    n_samples : int, default 10
        Monte Carlo draws L per row for the scores.
    n_reference : int, default 200
        Training rows whose posteriors are the references of the Wasserstein score
        (all rows if there are fewer).
    latent_dim : int, default 8
    latent_knn_weight : float, default 0.0
        Latent-space kNN score off by default for the VAE: on the shared ADBench
        sets it lowered the mean ROC-AUC of the reconstruction probability
        (benchmarks/RESULTS.md, "Latent-space scoring").
    **engine_params
        See :class:`pyod_ae_ext.engine.AutoEncoderDetector`.

    Attributes
    ----------
    reference_mu_, reference_sigma_ : torch.Tensor, shape (n_reference, latent_dim)
        Posterior parameters of the reference rows (CPU tensors).
    reference_index_ : numpy.ndarray
        Their row numbers in the training data.

    Notes
    -----
    ``activity_l1`` penalises the hidden activations and the encoder's output, i.e.
    both |mu| and |log sigma^2| (the latter pulls the posterior variance towards the
    prior's 1). ``corruption`` corrupts the encoder's input; the likelihood is of the
    clean row (a denoising VAE, Im et al. 2017).

    For ``score_method="wasserstein"`` the training scores (``decision_scores_``) include
    the reference rows, whose distance to themselves is 0 in one of the terms of the
    median.

    References
    ----------
    D. P. Kingma, M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    J. An, S. Cho, "Variational autoencoder based anomaly detection using
    reconstruction probability", SNU Data Mining Center, Special Lecture on IE, 2015.
    J. Pereira, M. Silveira, "Unsupervised anomaly detection in energy time series
    data using variational recurrent autoencoders with attention", ICMLA 2018.
    O. Rybkin, K. Daniilidis, S. Levine, "Simple and effective VAE training with
    calibrated decoders", ICML 2021.
    I. Higgins et al., "beta-VAE: learning basic visual concepts with a constrained
    variational framework", ICLR 2017.
    """

    SCORES = ("reconstruction_probability", "reconstruction_error", "wasserstein")

    # Old parameter name -> new one; the registry and model files accept the old names.
    renamed_parameters = {"score": "score_method"}

    def __init__(self, score_method="reconstruction_probability", beta=1.0, likelihood="gaussian",
                 variance="feature", min_variance=1e-3, n_samples=10, n_reference=200, latent_knn_weight=0.0,
                 **engine_params):
        if "score" in engine_params:
            score_method = _renamed_score(engine_params.pop("score"), score_method)
        super().__init__(latent_knn_weight=latent_knn_weight, **engine_params)
        self.score_method = score_method
        self.beta = beta
        self.likelihood = likelihood
        self.variance = variance
        self.min_variance = min_variance
        self.n_samples = n_samples
        self.n_reference = n_reference

    def set_params(self, **params):
        """scikit-learn's ``set_params``; the deprecated ``score`` sets ``score_method``."""
        if "score" in params:
            params["score_method"] = _renamed_score(params.pop("score"), params.get("score_method"))
        return super().set_params(**params)

    # ---- engine hooks -------------------------------------------------------

    def check_family_params(self):
        check_choice("score_method", self.score_method, list(self.SCORES))
        check_number("beta", self.beta, 0)
        check_choice("likelihood", self.likelihood, ["gaussian", "bernoulli"])
        check_choice("variance", self.variance, ["feature", "sample"])
        check_number("min_variance", self.min_variance, 0, 1, low_open=True)
        check_number("n_samples", self.n_samples, 1, integer=True)
        check_number("n_reference", self.n_reference, 1, integer=True)

    def build_network(self, n_features):
        per_sample = self.likelihood == "gaussian" and self.variance == "sample"
        return VAENet(self.make_encoder(n_features, 2 * self.latent_dim),
                      self.make_decoder(self.latent_dim, n_features, n_outputs=2 if per_sample else 1),
                      n_features, self.latent_dim, self.likelihood, self.variance, self.min_variance)

    def training_callbacks(self, X):
        return [_DecoderVarianceAndReferences(self, X)]

    def _set_feature_variance(self, X):
        """Set the per-feature decoder variance to its maximum-likelihood value on the training rows.

        Given the encoder and the decoder mean, the -ELBO summed over the training rows
        is minimised in v_j by the mean over rows of E_q[(x_j - m_j(z))^2] (the KL term
        does not involve v); it is estimated with ``n_samples`` draws per row.
        """
        net = self.net_
        net.eval()
        with torch.inference_mode():
            total = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
            for batch in self.scoring_batches(X):
                for z in self._draws(net, batch):
                    total += (batch - net.decode(z)[0]).pow(2).sum(dim=0).double()
        variance = (total / (X.shape[0] * self.n_samples)).clamp_min(self.min_variance)
        net.feature_variance.copy_(variance.float())

    def row_loss(self, net, x, target):
        mu, logvar = net.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        nll = -self._log_likelihood(net, z, target, batch_variance=True).sum(dim=1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=1)
        return nll + self.beta * kl

    def row_score(self, net, x):
        if self.score_method == "wasserstein":
            return self._wasserstein(net, x)
        if self.likelihood == "bernoulli":
            self._check_unit_interval(x, "X")
        if self.score_method == "reconstruction_probability":
            return -self._mc_log_likelihood(net, x).sum(dim=1)
        return self._mc_abs_error(net, x).sum(dim=1)

    def row_code(self, net, x):
        """The posterior mean mu(x)."""
        return net.encode(x)[0]

    def row_contributions(self, net, x):
        """Per-feature terms of the score: -E log p(x_j|z) or E|x_j - m_j(z)| (None for wasserstein)."""
        if self.score_method == "wasserstein":
            return None
        if self.likelihood == "bernoulli":
            self._check_unit_interval(x, "X")
        if self.score_method == "reconstruction_probability":
            return -self._mc_log_likelihood(net, x)
        return self._mc_abs_error(net, x)

    def row_reconstruction(self, net, x):
        """The decoder's mean at the posterior mean (for Bernoulli, the probabilities, standardised)."""
        mean = net.decode(net.encode(x)[0])[0]
        if self.likelihood == "gaussian":
            return mean
        scale = torch.as_tensor(self.scaler_scale_, dtype=x.dtype, device=x.device)
        return (torch.sigmoid(mean) - torch.as_tensor(self.scaler_mean_, dtype=x.dtype, device=x.device)) / scale

    # ---- likelihood pieces --------------------------------------------------

    def _target(self, x):
        """The likelihood's target: standardised x (Gaussian), x in original units (Bernoulli)."""
        if self.likelihood == "gaussian":
            return x
        mean = torch.as_tensor(self.scaler_mean_, dtype=x.dtype, device=x.device)
        scale = torch.as_tensor(self.scaler_scale_, dtype=x.dtype, device=x.device)
        return x * scale + mean

    def _log_likelihood(self, net, z, x, batch_variance=False):
        """Per-feature log p(x_j | z), shape (rows, features).

        ``batch_variance``: in training, the per-feature variance is the batch's
        maximum-likelihood value, the mean squared residual (the "optimal sigma" of
        Rybkin et al. 2021, per feature), held fixed in the gradient.
        """
        out, variance = net.decode(z)
        target = self._target(x)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, target.clamp(0.0, 1.0), reduction="none")
        if batch_variance and self.variance == "feature":
            variance = (target - out).detach().pow(2).mean(dim=0).clamp_min(self.min_variance).expand_as(out)
        return -0.5 * (_LOG_2PI + variance.log() + (target - out).pow(2) / variance)

    def _decoder_mean(self, net, z):
        out, _ = net.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def _draws(self, net, x):
        """z_l = mu(x) + sigma(x) * eps_l for the ``n_samples`` fixed draws eps_l (see :meth:`_scoring_noise`)."""
        mu, logvar = net.encode(x)
        sigma = torch.exp(0.5 * logvar)
        noise = self._scoring_noise(mu.shape[1], mu.device, mu.dtype)
        for eps in noise:  # a loop over MC draws, each vectorised over rows
            yield mu + sigma * eps

    def _scoring_noise(self, latent_dim, device, dtype):
        """The standard-normal draws eps_1..eps_L every row is scored with, shape (n_samples, latent_dim).

        The same draws for every row (common random numbers): each row's estimate is
        still an unbiased Monte Carlo average, and a row's score depends on the row and
        ``random_state`` alone, never on which other rows are scored with it or where
        they sit in a batch.
        """
        generator = torch.Generator().manual_seed(self.seed_ + 1)
        noise = torch.randn(self.n_samples, latent_dim, generator=generator, dtype=torch.float32)
        return noise.to(device=device, dtype=dtype)

    def _mc_log_likelihood(self, net, x):
        total = sum(self._log_likelihood(net, z, x) for z in self._draws(net, x))
        return total / self.n_samples

    def _mc_abs_error(self, net, x):
        target = self._target(x)
        total = sum((target - self._decoder_mean(net, z)).abs() for z in self._draws(net, x))
        return total / self.n_samples

    def _check_unit_interval(self, x, what):
        target = self._target(x)
        low, high = float(target.min()), float(target.max())
        if low < -_BERNOULLI_TOLERANCE or high > 1.0 + _BERNOULLI_TOLERANCE:
            raise DataError(f"likelihood='bernoulli' needs every value of {what} in [0, 1], got values in "
                            f"[{low:.4g}, {high:.4g}]; min-max scale the data or use likelihood='gaussian'")

    # ---- Wasserstein score ----------------------------------------------------

    def _choose_references(self, X):
        n_ref = min(self.n_reference, X.shape[0])
        index = torch.randperm(X.shape[0], generator=self.random_generator())[:n_ref].sort().values
        net = self.net_
        net.eval()
        with torch.inference_mode():
            mus, sigmas = [], []
            for batch in self.scoring_batches(X[index.to(X.device)]):
                mu, logvar = net.encode(batch)
                mus.append(mu)
                sigmas.append(torch.exp(0.5 * logvar))
        self.reference_index_ = index.numpy()
        self.reference_mu_ = torch.cat(mus).float().cpu()
        self.reference_sigma_ = torch.cat(sigmas).float().cpu()

    def _wasserstein(self, net, x):
        mu, logvar = net.encode(x)
        query = torch.cat([mu, torch.exp(0.5 * logvar)], dim=1)
        reference = torch.cat([self.reference_mu_, self.reference_sigma_], dim=1).to(query)
        rows = max(1, _WASSERSTEIN_CHUNK_ELEMENTS // reference.shape[0])
        return torch.cat([_median(_squared_distances(chunk, reference)) for chunk in query.split(rows)])

    # ---- public extras --------------------------------------------------------

    def reconstruction_log_probability(self, X, original_units=False):
        """Monte Carlo ``(1/L) sum_l log p(x | z_l)`` for each row, whatever ``score_method`` is.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        original_units : bool, default False
            For the Gaussian decoder, give the log-density of the row in its original
            units (standardised log-density minus ``sum(log scale_)``) rather than of
            the standardised row. No effect for the Bernoulli decoder, whose
            log-probability is of the original values.

        Returns
        -------
        numpy.ndarray, shape (n_samples,)
        """
        x_all = self.network_input(X)
        if self.likelihood == "bernoulli":
            self._check_unit_interval(x_all, "X")
        with self.scoring_context(rows=x_all.shape[0]):
            values = self.map_batches(lambda batch: self._mc_log_likelihood(self.net_, batch).sum(dim=1), x_all)
        values = values.double().cpu().numpy()
        if original_units and self.likelihood == "gaussian":
            values = values - float(np.log(self.scaler_scale_).sum())
        return values

    # ---- persistence ------------------------------------------------------------

    def extra_fitted_state(self):
        return {}, {"reference_mu": self.reference_mu_, "reference_sigma": self.reference_sigma_,
                    "reference_index": torch.as_tensor(self.reference_index_, dtype=torch.int64)}

    def restore_extra_fitted_state(self, meta, tensors):
        self.reference_mu_ = tensors["reference_mu"].float()
        self.reference_sigma_ = tensors["reference_sigma"].float()
        self.reference_index_ = tensors["reference_index"].numpy()


class _DecoderVarianceAndReferences(Callback):
    """Before training: Bernoulli inputs must lie in [0, 1]. After: the ML decoder variance
    (``variance="feature"``) and the Wasserstein reference posteriors, from every training row."""

    def __init__(self, detector, X):
        self.detector, self.X = detector, X

    def on_train_begin(self, loop):
        if self.detector.likelihood == "bernoulli":
            self.detector._check_unit_interval(self.X, "X")

    def on_train_end(self, loop):
        detector = self.detector
        if detector.likelihood == "gaussian" and detector.variance == "feature":
            detector._set_feature_variance(self.X)
        detector._choose_references(self.X)


def _renamed_score(score, score_method):
    """The value of the deprecated ``score`` parameter, with its ``FutureWarning``."""
    warnings.warn("the VAE's `score` parameter is now `score_method` (`score` hid scikit-learn's score "
                  "method); use score_method=... (-p vae.score_method=... on the command line)",
                  FutureWarning, stacklevel=3)
    if score_method not in (None, "reconstruction_probability", score):
        raise TypeError(f"VAE got score={score!r} and score_method={score_method!r}; give score_method only")
    return score


def _squared_distances(a, b):
    """Exact pairwise squared Euclidean distances (no ``|a|^2 + |b|^2 - 2ab`` cancellation)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


def _median(values):
    """Row-wise median, the mean of the two middle values for an even count (as numpy)."""
    n = values.shape[1]
    ordered = values.sort(dim=1).values
    return 0.5 * (ordered[:, (n - 1) // 2] + ordered[:, n // 2])
