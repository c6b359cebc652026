"""plots.py draws what it is given, labels its axes, and refuses misshapen input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from infernet_tutorial import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_image_grid_places_every_digit():
    images = np.zeros((12, 784), np.float32)
    images[11, :] = 1.0  # last digit all ink: row 1, column 1 of a 10-wide grid
    ax = plots.image_grid(images, ncols=10, title="digits")
    grid = ax.images[0].get_array()
    assert grid.shape == (2 * 28, 10 * 28)
    assert grid[28:, 28:56].min() == 1.0 and grid[:28].max() == 0.0 and grid[28:, 56:].max() == 0.0
    assert ax.get_title() == "digits"
    with pytest.raises(ValueError, match=r"shape \[n, 784\], got \[3, 28, 28\]"):
        plots.image_grid(np.zeros((3, 28, 28)))


def test_bytes_vs_n_draws_local_and_fixed_lines():
    ns = np.array([10, 100, 1000])
    ax = plots.bytes_vs_n(ns, ns * 80, 824_400)
    local, network = ax.get_lines()
    np.testing.assert_array_equal(local.get_ydata(), [800, 8000, 80000])
    np.testing.assert_array_equal(network.get_ydata(), [824_400] * 3)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "N" in ax.get_xlabel() and "bytes" in ax.get_ylabel()
    with pytest.raises(ValueError, match="equal length"):
        plots.bytes_vs_n([1, 2], [1], 5)


def test_elbo_curve_smooths_and_accepts_a_history():
    class FakeHistory:
        elbo = np.array([-200.0, -150.0, -100.0, -100.0])

    ax = plots.elbo_curve(FakeHistory(), smooth=2, label="new digit")
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), [-175.0, -125.0, -100.0])
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    assert ax.get_ylabel().startswith("ELBO") and ax.get_xlabel() == "optimization step"
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plots.elbo_curve(np.zeros((2, 2)))


def test_latent_map_colours_by_label():
    z = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    ax = plots.latent_map(z, np.array([0, 7, 9]))
    points = ax.collections[0]
    np.testing.assert_array_equal(points.get_offsets(), z)
    np.testing.assert_array_equal(points.get_array(), [0, 7, 9])
    assert ax.get_xlabel() == "z₁" and ax.get_ylabel() == "z₂"
    with pytest.raises(ValueError, match=r"z of shape \[n, 2\]"):
        plots.latent_map(np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="expects 3 labels"):
        plots.latent_map(z, np.zeros(2))


def test_parity():
    ax = plots.parity([1.0, 2.0], [1.1, 1.9], xlabel="exact", ylabel="learned")
    diag, pts = ax.get_lines()
    np.testing.assert_allclose(diag.get_xdata(), [1.0, 2.0])
    np.testing.assert_allclose(pts.get_ydata(), [1.1, 1.9])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("exact", "learned")
    with pytest.raises(ValueError, match="same number of values"):
        plots.parity([1.0], [1.0, 2.0])


def test_posterior_2d_draws_contours_and_two_ellipses_per_gaussian():
    z1, z2 = np.linspace(-2, 2, 30), np.linspace(-1, 1, 20)
    density = np.exp(-0.5 * (z1[None, :] ** 2 + z2[:, None] ** 2))
    ax = plots.posterior_2d(z1, z2, density, {"a": ([0, 0], [1, 0.5]), "b": ([1, 0], [0.2, 0.2])})
    assert len(ax.patches) == 4 and ax.get_xlabel() == "z₁" and ax.get_ylabel() == "z₂"
    assert [t.get_text() for t in ax.get_legend().get_texts()][1:] == ["a (1 and 2 std)", "b (1 and 2 std)"]
    with pytest.raises(ValueError, match="shape"):
        plots.posterior_2d(z1, z2, density.T)


def test_dots_places_values_on_one_axis_with_errors():
    ax = plots.dots(["MLP", "conv"], [-106.0, -107.25], errors=[0.5, 0.25], xlabel="IWAE bound (nats)", fmt="{:.2f}")
    lines = [line for line in ax.get_lines() if line.get_marker() == "o"]  # the dots, not the error-bar caps
    assert [(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in lines] == [(-106.0, 1.0), (-107.25, 0.0)]
    ticks = {float(y): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}
    assert ticks == {1.0: "MLP", 0.0: "conv"}  # first name on top, each at its dot
    assert [t.get_text() for t in ax.texts] == ["-106.00", "-107.25"]
    caps = [seg for c in ax.collections for seg in c.get_segments()]
    assert sorted(float(np.ptp(seg[:, 0])) for seg in caps) == [0.5, 1.0]  # error bars of width 2 * error
    assert ax.get_xlabel() == "IWAE bound (nats)" and not ax.patches  # no bars
    with pytest.raises(ValueError, match="2 names but 1 values"):
        plots.dots(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="errors must have the shape"):
        plots.dots(["a"], [1.0], errors=[1.0, 2.0])


def test_refinement_curves_start_at_k_zero_on_a_symlog_axis():
    ax = plots.refinement_curves({"network": [10.0, 5.0, 1.0], "uniform": [100.0, 1.0, 0.01]})
    net, uniform = ax.get_lines()
    np.testing.assert_array_equal(net.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(uniform.get_ydata(), [100.0, 1.0, 0.01])
    assert ax.get_xscale() == "symlog" and ax.get_yscale() == "log"
    assert "K" in ax.get_xlabel() and [t.get_text() for t in ax.get_legend().get_texts()] == ["network", "uniform"]
    with pytest.raises(ValueError, match="no curves"):
        plots.refinement_curves({})
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plots.refinement_curves({"bad": []})
