"""Sleep phase, wake-sleep, reweighted wake-sleep and importance sampling, checked against closed forms.

The linear-Gaussian model has an exact posterior N(m(x), S). A factorized q fitted by the ELBO
(KL(q || p)) has variances 1 / (S^{-1})_ii; one fitted by the sleep phase (KL(p || q), on dreams only)
has variances S_ii; with the exact posterior as proposal, importance sampling is exact.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import infernet_tutorial as it
from infernet_tutorial.families import diag_gaussian
from infernet_tutorial.importance import effective_sample_size, gaussian_ess_fraction, importance_sample
from infernet_tutorial.wake_sleep import dream, rws_objective, sleep_objective, wake_objective, wake_sleep_objective

tfd = tfp.distributions


def decaying_adam(lr: float, steps: int) -> keras.optimizers.Optimizer:
    """Adam with a cosine-decayed rate: the sleep phase's gradient is noisy, the decay removes the jitter."""
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.01))


def fit_linear(model, objective_of, steps=1500, batch=1000, n=2000, seed=0):
    net = it.LinearInferenceNetwork(model.latent_dim, model.data_dim)
    x = model.sample(n, seed=seed + 1)
    it.fit(objective_of(net), net.trainable_variables, x, steps=steps, batch_size=batch,
           optimizer=decaying_adam(3e-2, steps), seed=seed, progress=False)
    return net, x


@pytest.fixture(scope="module")
def correlated():
    return it.LinearGaussian.correlated(posterior_std=(0.6, 0.5), correlation=0.9, data_dim=6, sigma=0.5, seed=0)


def test_correlated_model_has_the_requested_posterior(correlated):
    S = correlated.posterior_cov().numpy()
    np.testing.assert_allclose(S, [[0.36, 0.27], [0.27, 0.25]], atol=1e-5)
    qp, pq = (correlated.factorized_optimum_variances(k).numpy() for k in ("kl_qp", "kl_pq"))
    np.testing.assert_allclose(pq, [0.36, 0.25], atol=1e-5)
    np.testing.assert_allclose(qp, np.array([0.36, 0.25]) * (1 - 0.9**2), atol=1e-5)  # conditional variances


def test_factorized_optima_minimize_the_two_kls(correlated):
    """Grid search over diagonal q = N(m, diag(v)) of the Gaussian KLs in both directions."""
    S = correlated.posterior_cov().numpy().astype(np.float64)
    P = np.linalg.inv(S)
    grid = np.linspace(0.01, 0.6, 300)
    v1, v2 = np.meshgrid(grid, grid, indexing="ij")
    # same means, so only the covariance terms: KL(q||p) = (tr(P V) - 2 - log|V| - log|P|) / 2, and reversed
    kl_qp = 0.5 * (P[0, 0] * v1 + P[1, 1] * v2 - 2 - np.log(v1 * v2) - np.log(np.linalg.det(P)))
    kl_pq = 0.5 * (S[0, 0] / v1 + S[1, 1] / v2 - 2 + np.log(v1 * v2) - np.log(np.linalg.det(S)))
    for kl, which in ((kl_qp, "kl_qp"), (kl_pq, "kl_pq")):
        i, j = np.unravel_index(np.argmin(kl), kl.shape)
        np.testing.assert_allclose([grid[i], grid[j]], correlated.factorized_optimum_variances(which).numpy(), atol=2.5e-3)
    with pytest.raises(ValueError, match="kl_qp"):
        correlated.factorized_optimum_variances("forward")


def test_impossible_posterior_is_refused():
    with pytest.raises(ValueError, match="narrower than the prior"):
        it.LinearGaussian.correlated(posterior_std=(1.2, 0.5))
    with pytest.raises(ValueError, match="correlation"):
        it.LinearGaussian.correlated(correlation=1.0)


def test_sleep_phase_reaches_the_exact_posterior_when_the_family_contains_it():
    model = it.LinearGaussian.orthogonal(data_dim=8, latent_dim=3, sigma=0.5, seed=1)
    net, _ = fit_linear(model, lambda net: sleep_objective(net, model, model.prior))
    x_new = model.sample(500, seed=9)  # real data the network never saw; the sleep phase saw only dreams
    gap = model.log_evidence(x_new).numpy() - model.exact_elbo(x_new, net(x_new)).numpy()
    assert gap.mean() < 0.01
    assert gap.min() > -1e-3


def test_sleep_phase_is_mass_covering_and_the_elbo_mode_seeking(correlated):
    model = correlated
    S = model.posterior_cov().numpy()
    exact_map = S @ model.W.numpy().T / model.sigma**2  # m(x) = exact_map (x - b)
    targets = {"kl_pq": sleep_objective, "kl_qp": None}
    for which, make in targets.items():
        objective = (lambda net: make(net, model, model.prior)) if make else (
            lambda net: lambda x, idx, seed: model.exact_elbo(x, net(x)))
        net, x = fit_linear(model, objective)
        var = net(x[:1]).variance().numpy()[0]
        np.testing.assert_allclose(var, model.factorized_optimum_variances(which).numpy(), rtol=0.03)
        np.testing.assert_allclose(net.A.numpy().T, exact_map, atol=0.03)  # both directions: the exact mean
    # the two optima differ by the factor 1 - rho^2 = 0.19, far outside the tolerance above
    assert np.all(model.factorized_optimum_variances("kl_qp").numpy() < 0.5 * np.diag(S))


def test_importance_sampling_with_the_exact_posterior_is_exact(correlated):
    x = correlated.sample(300, seed=3)
    result = importance_sample(x, lambda xb, idx: correlated.posterior(xb), correlated, correlated.prior,
                               k=64, batch_size=128, chunk=24, seed=1)
    np.testing.assert_allclose(result.log_evidence, correlated.log_evidence(x).numpy(), atol=1e-3)
    np.testing.assert_allclose(result.ess, 64, rtol=1e-4)
    np.testing.assert_allclose(result.ess_fraction, 1, rtol=1e-4)
    # self-normalized mean: the average of 64 exact posterior draws, so within a few standard errors
    err = (result.posterior_mean - correlated.posterior(x).mean().numpy()) / np.sqrt(np.diag(correlated.posterior_cov()) / 64)
    assert np.abs(err).max() < 5 and abs(err.mean()) < 0.3


def test_effective_sample_size_extremes():
    equal = tf.fill([50, 3], -7.0)
    np.testing.assert_allclose(effective_sample_size(equal).numpy(), 50, rtol=1e-5)
    one = tf.concat([tf.fill([1, 3], 0.0), tf.fill([49, 3], -1e4)], axis=0)
    np.testing.assert_allclose(effective_sample_size(one).numpy(), 1, rtol=1e-5)
    two = tf.constant([[0.0], [np.log(3.0)]])  # weights 1 and 3: (1+3)^2 / (1+9) = 1.6
    np.testing.assert_allclose(effective_sample_size(two).numpy(), 1.6, rtol=1e-5)


def test_ess_of_a_gaussian_proposal_matches_its_closed_form(correlated):
    """Proposal N(m(x), Q) with the posterior's mean: ESS/k -> 1 / E_q[(p/q)^2] (closed form) for large k.

    The limit is reached only where the weights have a finite fourth moment (4 S^{-1} - 3 Q^{-1} positive
    definite), so the sampled check uses wide proposals; the sleep-phase optimum diag(S_ii) is checked
    against its closed form, 1 - rho^2 for a 2-D posterior with correlation rho.
    """
    S = correlated.posterior_cov().numpy()
    x = correlated.sample(20, seed=5)
    for Q in (1.5 * S, 2 * np.diag(np.diag(S))):
        chol = np.linalg.cholesky(Q).astype(np.float32)
        proposal = lambda xb, idx, chol=chol: tfd.MultivariateNormalTriL(correlated.posterior(xb).mean(), chol)
        result = importance_sample(x, proposal, correlated, correlated.prior, k=20_000, batch_size=20, chunk=5000, seed=2)
        np.testing.assert_allclose(result.ess_fraction.mean(), gaussian_ess_fraction(S, Q), rtol=0.02)
        se = np.sqrt((1 / gaussian_ess_fraction(S, Q) - 1) / 20_000)  # delta method: sd of log of the mean weight
        np.testing.assert_allclose(result.log_evidence, correlated.log_evidence(x).numpy(), atol=4 * se)
    assert gaussian_ess_fraction(S, 1.5 * S) == pytest.approx((2 * 1.5 - 1) / 1.5**2, rel=1e-6)  # ((2c-1)/c^2)^(d/2)
    assert gaussian_ess_fraction(S, np.diag(np.diag(S))) == pytest.approx(1 - 0.9**2, rel=1e-5)
    # the ELBO's optimum (variances 1 / (S^-1)_ii) is too narrow along the correlation: infinite-variance weights
    assert gaussian_ess_fraction(S, np.diag(correlated.factorized_optimum_variances("kl_qp").numpy())) == 0.0
    assert gaussian_ess_fraction(S, S) == pytest.approx(1.0)


def _grads(objective, variables, x, seed):
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(objective(x, tf.range(len(x)), seed))
    return value, tape.gradient(value, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def test_wake_sleep_routes_each_term_to_its_own_variables():
    """Wake moves only the decoder, sleep only q; their sum's value is the wake value (an ELBO estimate)."""
    model = it.LinearGaussian.correlated(seed=2)
    decoder = it.LinearGaussian(model.W.numpy(), model.b.numpy(), model.sigma)
    W = tf.Variable(model.W)  # a learnable decoder: x | z ~ N(W z + b, sigma^2)
    decoder.W = W
    net = it.LinearInferenceNetwork(2, model.data_dim)
    net.A.assign(tf.random.stateless_normal(net.A.shape, [0, 1]) * 0.3)
    x = tf.constant(model.sample(64, seed=1))
    seed = tf.constant([4, 2])
    q_vars, p_vars = net.trainable_variables, [W]
    v_ws, g_ws = _grads(wake_sleep_objective(net, decoder, decoder.prior), q_vars + p_vars, x, seed)
    v_wake, g_wake = _grads(wake_objective(net, decoder, decoder.prior), q_vars + p_vars, x, seed)
    v_sleep, g_sleep = _grads(sleep_objective(net, decoder, decoder.prior), q_vars + p_vars, x, seed)
    np.testing.assert_allclose(v_ws.numpy(), v_wake.numpy(), rtol=1e-6)
    for g in g_wake[: len(q_vars)] + g_sleep[len(q_vars):]:
        assert not np.any(g.numpy())  # wake gives q nothing, sleep gives the decoder nothing
    for a, b in zip(g_ws, g_sleep[: len(q_vars)] + g_wake[len(q_vars):]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(g_ws[-1].numpy()).max() > 0 and np.abs(g_ws[0].numpy()).max() > 0
    # reweighted wake-sleep with one sample has weight 1: with the sleep update for q it is wake-sleep
    v_rws, g_rws = _grads(rws_objective(net, decoder, decoder.prior, k=1, q_update="sleep"), q_vars + p_vars, x, seed)
    np.testing.assert_allclose(v_rws.numpy(), v_ws.numpy(), rtol=1e-5)
    for a, b in zip(g_rws, g_ws):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_rws_wake_update_for_q_covers_the_posterior_mass(correlated):
    """The wake-phase q update of RWS also minimizes KL(p(z|x) || q), but on the real data: with enough
    importance samples the factorized q's variances approach S_ii, not the ELBO's 1/(S^-1)_ii."""
    model = correlated
    net, _ = fit_linear(model, lambda net: rws_objective(net, model, model.prior, k=100, q_update="wake"),
                        steps=1500, batch=200)
    var = net(model.sample(1)).variance().numpy()[0]
    pq, qp = (model.factorized_optimum_variances(w).numpy() for w in ("kl_pq", "kl_qp"))
    np.testing.assert_allclose(var, pq, rtol=0.1)
    assert np.all(var > 3 * qp)


def test_errors_users_can_cause():
    model = it.LinearGaussian.correlated()
    with pytest.raises(ValueError, match="LocalFactors"):
        sleep_objective(it.LocalFactors(10, 2), model, model.prior)
    net = it.LinearInferenceNetwork(2, model.data_dim)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rws_objective(net, model, model.prior, k=0)
    with pytest.raises(ValueError, match="q_update"):
        rws_objective(net, model, model.prior, q_update="dream")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        importance_sample(model.sample(4), net, model, model.prior, k=0)
    decoder, prior = it.BernoulliDecoder(2), it.standard_normal_prior(2)
    grey = np.full((4, 784), 0.5, np.float32)
    with pytest.raises(ValueError, match="binary pixels"):
        importance_sample(grey, it.MLPInferenceNetwork(2), decoder, prior, k=5)


def _small_sigmoid_belief_net(units=4, seed=0):
    """A fixed Helmholtz machine with few binary units (exact by enumeration) and a decisive decoder."""
    from infernet_tutorial.helmholtz import bernoulli_prior

    keras.utils.set_random_seed(seed)
    prior = bernoulli_prior(units)
    prior.trainable_variables[0].assign([-1.0, 0.5, 0.0, 1.0][:units])
    decoder = it.BernoulliDecoder(units, hidden=32)
    for v in decoder.trainable_variables:
        v.assign(v * 1.5)
    return prior, decoder


def test_helmholtz_enumeration_and_importance_sampling_with_binary_latents():
    from infernet_tutorial.helmholtz import BernoulliInferenceNetwork, all_binary_states, exact_log_evidence

    states = all_binary_states(3).numpy()
    assert states.shape == (8, 3) and len({tuple(s) for s in states}) == 8
    prior, decoder = _small_sigmoid_belief_net()
    _, x = dream(decoder, prior, 50, tf.constant([1, 2]))
    log_joint = np.stack([decoder(tf.fill([50, 4], 0.0) + s).log_prob(x).numpy() + prior.log_prob(s).numpy()
                          for s in all_binary_states(4).numpy()])  # [16, 50]
    np.testing.assert_allclose(exact_log_evidence(x, decoder, prior).numpy(), np.logaddexp.reduce(log_joint, axis=0), rtol=1e-5)
    # an untrained recognition network puts mass on every state: importance sampling converges to log p(x)
    result = importance_sample(x.numpy(), BernoulliInferenceNetwork(4), decoder, prior, k=4000, batch_size=50, chunk=1000)
    se = np.sqrt(1 / result.ess - 1 / result.k)  # delta method: sd of log p-hat, from the weights' spread
    assert np.all(np.abs(result.log_evidence - exact_log_evidence(x, decoder, prior).numpy()) < 5 * se + 1e-3)
    assert se.max() < 0.1  # and the check is tight
    with pytest.raises(ValueError, match="latent_dim <= 16"):
        all_binary_states(17)


def test_sleep_phase_learns_the_posterior_marginals_of_binary_units():
    """KL(p || q) over factorized Bernoulli q is minimized by the exact posterior marginals p(z_j = 1 | x)."""
    from infernet_tutorial.helmholtz import BernoulliInferenceNetwork, exact_posterior_marginals

    prior, decoder = _small_sigmoid_belief_net()
    q = BernoulliInferenceNetwork(4, hidden=64)
    steps = 3000
    it.fit(sleep_objective(q, decoder, prior), q.trainable_variables, np.zeros((200, 784), np.float32), steps=steps,
           batch_size=200, optimizer=decaying_adam(3e-3, steps), progress=False)  # the batch supplies only its size
    _, x = dream(decoder, prior, 500, tf.constant([9, 9]))
    exact = exact_posterior_marginals(x, decoder, prior).numpy()
    learned = q(x).mean().numpy()
    assert np.abs(exact - 0.5).mean() > 0.2  # the posterior is informative, so matching it means something
    assert np.abs(learned - exact).mean() < 0.05
