"""jaxdiff.processes.dct against scipy's orthonormal DCT-II and the heat equation it diagonalises."""
import numpy as np
import pytest
import scipy.fft

import jax.numpy as jnp

from jaxdiff.processes.dct import dct2, dct_matrix, idct2, laplacian_eigenvalues


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_matrix_is_scipys_orthonormal_dct_ii(n):
    c = dct_matrix(n)
    np.testing.assert_allclose(c, scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0), atol=1e-12)
    np.testing.assert_allclose(c @ c.T, np.eye(n), atol=1e-12)


def test_dct2_and_inverse_on_nhwc():
    x = np.random.default_rng(0).normal(size=(3, 8, 6, 2))
    u = np.asarray(dct2(jnp.asarray(x, jnp.float32)))
    ref = scipy.fft.dctn(x, type=2, norm="ortho", axes=(1, 2))
    np.testing.assert_allclose(u, ref, atol=2e-5)
    np.testing.assert_allclose(np.asarray(idct2(jnp.asarray(ref, jnp.float32))), x, atol=2e-5)


def test_laplacian_eigenvalues_are_those_of_the_neumann_laplacian():
    # The discrete Neumann Laplacian's eigenvectors are the DCT-II basis vectors; for smooth modes its
    # eigenvalue 2 − 2 cos(πk/N) ≈ (πk/N)², the continuous λ used for the heat equation.
    n = 32
    lam = laplacian_eigenvalues(n, n)
    assert lam.shape == (n, n) and lam[0, 0] == 0
    np.testing.assert_allclose(lam[3, 0], (np.pi * 3 / n) ** 2, rtol=1e-12)
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    L[0, 0] = L[-1, -1] = 1  # reflecting (Neumann) ends
    c = dct_matrix(n)
    D = c @ L @ c.T
    np.testing.assert_allclose(D, np.diag(np.diag(D)), atol=1e-10)  # diagonal in the DCT basis
    np.testing.assert_allclose(np.diag(D)[:4], 2 - 2 * np.cos(np.pi * np.arange(4) / n), atol=1e-10)
    np.testing.assert_allclose(np.diag(D)[1:4], lam[1:4, 0], rtol=0.02)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_bad_size(bad):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        dct_matrix(bad)
