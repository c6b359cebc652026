"""The gap decomposition against closed forms (linear-Gaussian model, exact posterior N(m(x), S)).

With a non-orthogonal W, S is not diagonal. The best fully factorized Gaussian under the ELBO has
precisions diag(S^{-1}) and approximation gap 1/2 (sum_i log (S^{-1})_ii + log det S) > 0; a
full-covariance Gaussian or a flow reaches ~0. log p(x) - L[q] = KL(q || p(z|x)) exactly.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import infernet_tutorial as it
from infernet_tutorial.flows import LocalFlow, LocalFullCovGaussian
from infernet_tutorial.gaps import (
    best_local, converged, decompose, gap_table, grid_posteriors, iwae_log_evidence, mc_elbo, quadrature_log_evidence,
)
from infernet_tutorial.posterior_grid import posterior_on_grid

tfd = tfp.distributions
N = 3


@pytest.fixture(scope="module")
def model():
    return it.LinearGaussian.correlated(posterior_std=(0.6, 0.5), correlation=0.9, data_dim=6, sigma=0.5, seed=0)


@pytest.fixture(scope="module")
def x(model):
    return model.sample(N, seed=1)


def closed_form_ffg_gap(model) -> float:
    S = model.posterior_cov().numpy().astype(np.float64)
    return 0.5 * (np.log(np.diag(np.linalg.inv(S))).sum() + np.linalg.slogdet(S)[1])


def decaying(lr=1e-2, steps=3000):
    return keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.01)


def as_mvn(q):
    return tfd.MultivariateNormalDiag(q.mean(), q.stddev())


@pytest.fixture(scope="module")
def ffg(model, x):
    family = it.LocalFactors(N, 2)
    # the rate decays over 3,000 steps and then stays at 1 %: the ELBO settles and the rule, not the cap, ends the run
    history = best_local(family, x, model, model.prior, max_steps=6000, learning_rate=decaying(), num_samples=10, progress=False)
    return family, history


def test_converged_follows_cremers_rule():
    rising = np.arange(3000.0)
    assert not converged(rising)
    plateau = np.concatenate([np.arange(500.0), np.full(1000, 400.0)])  # best block: index 4 (mean 449.5)
    assert not converged(plateau[:1400])  # 14 blocks: best was 9 blocks ago
    assert converged(plateau[:1500])  # 15 blocks: best was 10 blocks ago
    assert not converged(plateau[:1550], patience=11) and converged(plateau[:1500], window=50, patience=10)


def test_best_local_ffg_reaches_the_closed_form_approximation_gap(model, x, ffg):
    family, history = ffg
    q = family(None, tf.range(N))
    gap = (model.log_evidence(x) - model.exact_elbo(x, q)).numpy()
    expected = closed_form_ffg_gap(model)
    assert expected > 0.5  # correlation 0.9: -1/2 log(1 - 0.81) = 0.83 nats
    np.testing.assert_allclose(gap, expected, atol=0.01)
    # and its variances are the closed-form optimum 1 / (S^{-1})_ii, its means the exact posterior means
    np.testing.assert_allclose(q.variance().numpy(), np.tile(model.factorized_optimum_variances("kl_qp"), (N, 1)), rtol=0.03)
    np.testing.assert_allclose(q.mean().numpy(), model.posterior(x).mean().numpy(), atol=0.02)
    assert history.stopped_early and history.steps < 6000 and history.message.startswith("converged after")
    assert converged(history.elbo) and not converged(history.elbo[: history.steps - 100])  # stopped at the first check met


def test_full_covariance_family_closes_the_approximation_gap(model, x):
    family = LocalFullCovGaussian(N, 2)
    best_local(family, x, model, model.prior, max_steps=3000, learning_rate=decaying(), num_samples=10, progress=False)
    kl = tfd.kl_divergence(family(None, tf.range(N)), model.posterior(x)).numpy()  # = log p(x) - L[q*] exactly
    assert np.all(kl < 0.01), kl
    np.testing.assert_allclose(family(None, tf.range(N)).covariance().numpy()[0], model.posterior_cov().numpy(), atol=0.02)


def test_flow_family_nearly_closes_the_approximation_gap(model, x):
    family = LocalFlow(N, 2)
    best_local(family, x, model, model.prior, max_steps=4000, learning_rate=decaying(steps=4000), num_samples=10, progress=False)
    gap = model.log_evidence(x).numpy() - mc_elbo(x, family, model, model.prior, num_samples=20_000)
    assert np.all(gap < 0.1 * closed_form_ffg_gap(model)), gap
    assert np.all(gap > -0.01), gap  # an ELBO never exceeds log p(x) beyond Monte Carlo noise


def test_decomposition_adds_up_and_matches_kl(model, x, ffg):
    family, _ = ffg
    network = it.LinearInferenceNetwork(2, model.data_dim, fixed_scale=0.3)  # q = N(0, 0.3^2 I): a poor network
    q_net, q_star = network(tf.constant(x)), family(None, tf.range(N))
    exact = model.log_evidence(x).numpy()
    gaps = decompose(exact, model.exact_elbo(x, q_star).numpy(), model.exact_elbo(x, q_net).numpy())
    np.testing.assert_allclose(gaps.approximation + gaps.amortization, exact - model.exact_elbo(x, q_net).numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(gaps.inference, tfd.kl_divergence(as_mvn(q_net), model.posterior(x)).numpy(), atol=2e-3)
    np.testing.assert_allclose(gaps.approximation, closed_form_ffg_gap(model), atol=0.01)
    assert np.all(gaps.amortization > 1.0)
    means = gaps.means()
    assert means["inference"] == pytest.approx(means["approximation"] + means["amortization"], abs=1e-9)


def test_decompose_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one length"):
        decompose(np.zeros(3), np.zeros(3), np.zeros(4))


def test_quadrature_and_iwae_agree_with_the_exact_evidence(model, x, ffg):
    exact = model.log_evidence(x).numpy()
    np.testing.assert_allclose(quadrature_log_evidence(x, model, model.prior), exact, atol=1e-4)
    # the exact posterior as proposal: every importance weight equals p(x), so IWAE is exact for any k
    posterior = lambda xb, idx: model.posterior(xb)  # noqa: E731
    np.testing.assert_allclose(iwae_log_evidence(x, posterior, model, model.prior, k=10), exact, atol=1e-3)
    # a factorized proposal wider than the posterior's marginals (finite-variance weights): IWAE-5000
    # closes its ELBO gap of over half a nat to Monte Carlo noise. (The ELBO-optimal factorized q is too
    # narrow along the correlation: its weights have infinite variance and IWAE converges slowly.)
    wide = it.LocalFactors(N, 2, loc=model.posterior(x).mean().numpy(), scale=np.tile(1.5 * model.posterior(x).stddev().numpy()[:1], (N, 1)))
    assert np.all(exact - model.exact_elbo(x, wide(None, tf.range(N))).numpy() > 0.5)
    iwae = iwae_log_evidence(x, wide, model, model.prior, k=5000)
    np.testing.assert_allclose(iwae, exact, atol=0.06)  # Monte Carlo noise ~ 0.02; the ELBO is > 0.5 below


def test_mc_elbo_matches_the_closed_form_elbo(model, x, ffg):
    family, _ = ffg
    closed = model.exact_elbo(x, family(None, tf.range(N))).numpy()
    np.testing.assert_allclose(mc_elbo(x, family, model, model.prior, num_samples=20_000), closed, atol=0.02)


def test_best_local_checks_the_number_of_rows(model, x):
    with pytest.raises(ValueError, match="holds 5 points but x has 3"):
        best_local(it.LocalFactors(5, 2), x, model, model.prior, max_steps=10, progress=False)


def test_gap_table_has_cremers_rows_and_marks_missing_networks():
    g = decompose(np.array([-90.0, -92.0]), np.array([-92.0, -93.0]), np.array([-95.0, -95.0]))
    missing = decompose(np.array([-90.0, -92.0]), np.array([-91.0, -92.5]), np.full(2, np.nan))
    text = gap_table({"trained with FFG": {"FFG": g, "flow": missing}})
    lines = text.splitlines()
    assert lines[1].split()[-1] == "-91.00"  # log p(x)
    assert lines[0].split("  ")[-1].strip() == "trained with FFG"
    row = {line[:30].strip(): line[30:].split() for line in lines[1:]}
    assert row["approximation gap, FFG"] == ["1.50"] and row["amortization gap, FFG"] == ["2.50"]
    assert row["inference gap, FFG"] == ["4.00"] and row["L[q_flow] (network)"] == ["—"]


def test_grid_posteriors_are_posterior_on_grid_batched():
    """The same two passes as `posterior_on_grid`, one point at a time: the same grids and log p(x),
    for posteriors of different widths and places (one wide enough to widen the coarse grid)."""
    it.set_random_seed(0)
    decoder, prior = it.BernoulliDecoder(2, hidden=16), it.standard_normal_prior(2)
    x = np.random.default_rng(0).integers(0, 2, size=(3, 784)).astype(np.float32)
    x[2] = 0  # a blank digit
    batched = grid_posteriors(x, decoder, prior, n=61, limit=1.0, budget=50_000)  # small budget: several chunks
    for xi, post in zip(x, batched):
        single = posterior_on_grid(xi, decoder, prior, n=61, limit=1.0)
        np.testing.assert_allclose(post.z1, single.z1, rtol=1e-6)
        np.testing.assert_allclose(post.z2, single.z2, rtol=1e-6)
        assert post.log_evidence == pytest.approx(single.log_evidence, abs=1e-4)
    assert batched[0].z1[-1] - batched[0].z1[0] > 2.0  # limit=1 was too narrow: the coarse grid was widened
    with pytest.raises(ValueError, match="2-D latent"):
        grid_posteriors(x, decoder, it.standard_normal_prior(3))
