//! Built-in toy data sets, generated from a seed.

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution as _, StandardNormal};

/// Two interleaving half circles, following scikit-learn's `make_moons`:
/// `⌊n/2⌋` points on the outer moon `(cos t, sin t)` and the rest on the
/// inner moon `(1 − cos t, 1 − sin t − ½)`, `t` evenly spaced on `[0, π]`,
/// plus Gaussian noise of standard deviation `noise`, in shuffled order
/// (unscaled: x ∈ about `[−1, 2]`, y ∈ about `[−0.5, 1]`).
///
/// ```
/// use rand::SeedableRng;
/// let x = normflow::data::two_moons(1000, 0.05, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(x.shape(), (2, 1000));
/// ```
pub fn two_moons(n: usize, noise: f64, rng: &mut dyn Rng) -> DMatrix<f64> {
    let arcs = moon_arcs(n);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    DMatrix::from_fn(2, n, |i, j| {
        let e: f64 = StandardNormal.sample(rng);
        arcs[(i, order[j])] + noise * e
    })
}

/// The noise-free points of [`two_moons`] (`2 × n`, unshuffled).
pub fn moon_arcs(n: usize) -> DMatrix<f64> {
    let n_out = n / 2;
    let n_in = n - n_out;
    let lin = |k: usize, m: usize| {
        if m <= 1 {
            0.0
        } else {
            std::f64::consts::PI * k as f64 / (m - 1) as f64
        }
    };
    DMatrix::from_fn(2, n, |i, j| {
        if j < n_out {
            let t = lin(j, n_out);
            if i == 0 { t.cos() } else { t.sin() }
        } else {
            let t = lin(j - n_out, n_in);
            if i == 0 {
                1.0 - t.cos()
            } else {
                1.0 - t.sin() - 0.5
            }
        }
    })
}

/// The log-density of the two-moons generating process at the columns of
/// `x`: a uniform mixture of isotropic Gaussians of standard deviation
/// `noise` centred on the `n` arc points of [`moon_arcs`] (the exact density
/// of [`two_moons`] with that `n`, before shuffling).
pub fn two_moons_log_density(x: &DMatrix<f64>, n: usize, noise: f64) -> Vec<f64> {
    let arcs = moon_arcs(n);
    let c = -(2.0 * std::f64::consts::PI * noise * noise).ln() - (n as f64).ln();
    x.column_iter()
        .map(|p| {
            let mut m = f64::NEG_INFINITY;
            let terms: Vec<f64> = arcs
                .column_iter()
                .map(|a| {
                    let d2 = (p[0] - a[0]).powi(2) + (p[1] - a[1]).powi(2);
                    let t = -0.5 * d2 / (noise * noise);
                    m = m.max(t);
                    t
                })
                .collect();
            c + m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
        })
        .collect()
}
