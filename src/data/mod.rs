//! Built-in toy data sets, generated from a seed.
//!
//! Every generator returns a `2 × n` matrix with **one column per sample**
//! and draws all its randomness from the caller's `rng`, so a seeded
//! [`rand::rngs::StdRng`] gives reproducible data. [`Dataset`] lists the
//! sets by name with default parameters (the names used by the FFJORD toy
//! benchmarks, Grathwohl et al. 2019, `lib/toy_data.py`), and `torus`, two
//! angles from a [`TorusMixture`] of von Mises distributions.
//!
//! ```
//! use normflow::data::Dataset;
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! for &d in Dataset::ALL {
//!     assert_eq!(Dataset::from_name(d.name()), Some(d));
//!     assert_eq!(d.generate(100, &mut rng).shape(), (2, 100));
//! }
//! ```

use std::f64::consts::PI;

use nalgebra::DMatrix;
use rand::{Rng, RngExt};
use rand_distr::{Distribution as _, StandardNormal};

mod torus;
mod von_mises;

pub use torus::TorusMixture;
pub use von_mises::{VonMises, log_bessel_i0, mean_resultant_length};

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

/// A uniformly random permutation of `0..n` (Fisher–Yates).
fn permutation(n: usize, rng: &mut dyn Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    order
}

/// Uniform on `{k · 2⁻⁵², k = 0..2⁵²}` ⊂ `[0, 1)`: adding an integer in
/// `[−2, 2]` stays exact.
fn unit52(rng: &mut dyn Rng) -> f64 {
    (rng.next_u64() >> 12) as f64 * f64::EPSILON
}

fn normal(rng: &mut dyn Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Two concentric circles, following scikit-learn's `make_circles`
/// (`sklearn/datasets/_samples_generator.py`): `⌊n/2⌋` points on the outer
/// circle of radius 1 and the rest on the inner circle of radius `factor`,
/// each at evenly spaced angles `2πk/m`, `k = 0..m` (no endpoint), in
/// shuffled order, then Gaussian noise of standard deviation `noise` added
/// to every coordinate.
///
/// Without noise every point lies in the disc of radius 1 (with noise, in
/// that disc widened by a few `noise`).
///
/// # Panics
/// If `factor` is not in `[0, 1)` (scikit-learn raises there too).
///
/// ```
/// use rand::SeedableRng;
/// let x = normflow::data::circles(1000, 0.0, 0.5, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(x.shape(), (2, 1000));
/// let r = x.column(0).norm();
/// assert!((r - 1.0).abs() < 1e-12 || (r - 0.5).abs() < 1e-12);
/// ```
pub fn circles(n: usize, noise: f64, factor: f64, rng: &mut dyn Rng) -> DMatrix<f64> {
    assert!(
        (0.0..1.0).contains(&factor),
        "circles: factor must be in [0, 1), got {factor}"
    );
    let n_out = n / 2;
    let n_in = n - n_out;
    let point = |j: usize| {
        let (k, m, r) = if j < n_out {
            (j, n_out, 1.0)
        } else {
            (j - n_out, n_in, factor)
        };
        let t = 2.0 * PI * k as f64 / m as f64;
        (r * t.cos(), r * t.sin())
    };
    let order = permutation(n, rng);
    DMatrix::from_fn(2, n, |i, j| {
        let (px, py) = point(order[j]);
        (if i == 0 { px } else { py }) + noise * normal(rng)
    })
}

/// The 2-D checkerboard of the FFJORD / neural-spline-flow toy benchmarks
/// (Grathwohl et al. 2019, `lib/toy_data.py`; Durkan et al. 2019), without
/// FFJORD's final factor 2. Per sample, with `u, v` uniform on the grid
/// `{k · 2⁻⁵², k = 0..2⁵²}` of `[0, 1)` (so every sum below is exact and no
/// point rounds onto a white square) and `b ~ U{0, 1}`:
///
/// - `x1 = 4u − 2` (uniform in `[−2, 2)`),
/// - `x2 = v − 2b + (⌊x1⌋ mod 2)`.
///
/// So `x` is uniform on the 8 "black" unit squares of `[−2, 2)²`, those
/// with `⌊x1⌋ + ⌊x2⌋` even (density `1/8` there, 0 elsewhere).
///
/// ```
/// use rand::SeedableRng;
/// let x = normflow::data::checkerboard(500, &mut rand::rngs::StdRng::seed_from_u64(0));
/// for p in x.column_iter() {
///     assert!((p[0].floor() + p[1].floor()).rem_euclid(2.0) == 0.0);
/// }
/// ```
pub fn checkerboard(n: usize, rng: &mut dyn Rng) -> DMatrix<f64> {
    let mut x = DMatrix::zeros(2, n);
    for j in 0..n {
        let x1 = 4.0 * unit52(rng) - 2.0;
        let b = rng.random_range(0..2u32) as f64;
        let x2 = unit52(rng) - 2.0 * b + x1.floor().rem_euclid(2.0);
        x[(0, j)] = x1;
        x[(1, j)] = x2;
    }
    x
}

/// Eight Gaussians: an equal-weight mixture of isotropic Gaussians of
/// standard deviation `noise` centred at `scale · (cos kπ/4, sin kπ/4)`,
/// `k = 0..8` (the "8gaussians" toy of Gulrajani et al. 2017 and FFJORD,
/// `lib/toy_data.py`, there with radius `4/1.414` and std `0.5/1.414`).
/// Each sample picks its centre uniformly at random. The usual radius is
/// `scale = 2`; [`Dataset::EightGaussians`] uses `scale = 2, noise = 0.25`
/// (FFJORD's ratio std/radius = 1/8).
///
/// ```
/// use rand::SeedableRng;
/// let x = normflow::data::eight_gaussians(800, 2.0, 0.0, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert!(x.column_iter().all(|p| (p.norm() - 2.0).abs() < 1e-12));
/// ```
pub fn eight_gaussians(n: usize, scale: f64, noise: f64, rng: &mut dyn Rng) -> DMatrix<f64> {
    let mut x = DMatrix::zeros(2, n);
    for j in 0..n {
        let t = PI / 4.0 * rng.random_range(0..8u32) as f64;
        x[(0, j)] = scale * t.cos() + noise * normal(rng);
        x[(1, j)] = scale * t.sin() + noise * normal(rng);
    }
    x
}

/// The pinwheel of Johnson et al. 2016 ("Composing graphical models with
/// neural networks", `svae/experiments/gmm_svae_synth.py`,
/// `make_pinwheel_data(0.3, 0.05, 5, ·, 0.25)`): 5 arms, radial std 0.3,
/// tangential std 0.05, rate 0.25. Sample `j` belongs to arm `k = j mod 5`
/// (so arm sizes differ by at most one; the order is shuffled); with
/// `e1, e2 ~ N(0, 1)`,
///
/// - `f = (1 + 0.3 e1, 0.05 e2)`,
/// - `a = 2πk/5 + 0.25 exp(f1)`,
/// - `x = 2 · (f1 cos a + f2 sin a, −f1 sin a + f2 cos a)`
///   (`f` rotated by `−a`, the row-vector product `f · R(a)` of the
///   original).
///
/// The final factor 2 is FFJORD's (`lib/toy_data.py`; Johnson et al. use 10),
/// so `|x| ≈ 2 |f|` lies around 2 (in `[0, 4]` up to 3.3 radial standard
/// deviations).
///
/// ```
/// use rand::SeedableRng;
/// let x = normflow::data::pinwheel(500, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(x.shape(), (2, 500));
/// ```
pub fn pinwheel(n: usize, rng: &mut dyn Rng) -> DMatrix<f64> {
    const ARMS: usize = 5;
    const RADIAL_STD: f64 = 0.3;
    const TANGENTIAL_STD: f64 = 0.05;
    const RATE: f64 = 0.25;
    const SCALE: f64 = 2.0;
    let order = permutation(n, rng);
    let mut x = DMatrix::zeros(2, n);
    for j in 0..n {
        let k = order[j] % ARMS;
        let f1 = 1.0 + RADIAL_STD * normal(rng);
        let f2 = TANGENTIAL_STD * normal(rng);
        let a = 2.0 * PI * k as f64 / ARMS as f64 + RATE * f1.exp();
        let (s, c) = a.sin_cos();
        x[(0, j)] = SCALE * (f1 * c + f2 * s);
        x[(1, j)] = SCALE * (-f1 * s + f2 * c);
    }
    x
}

/// Two interleaved spirals, the FFJORD "2spirals" toy (Grathwohl et al.
/// 2019, `lib/toy_data.py`). Sample `j` is on spiral `σ = +1` if `j` is even
/// and `σ = −1` if odd (sizes `⌈n/2⌉`, `⌊n/2⌋`); with `u, v1, v2 ~ U[0, 1)`
/// and `e1, e2 ~ N(0, 1)`:
///
/// - `t = √u · 540 · 2π/360` (the angle, in `[0, 3π)`; `√u` makes points
///   uniform along the arc),
/// - `d = (−t cos t + v1/2, t sin t + v2/2)` (uniform jitter in `[0, ½)²`),
/// - `x = σ d / 3 + noise · (e1, e2)`.
///
/// So the radius grows linearly with the angle: before the Gaussian noise
/// `| |x| − t/3 | ≤ √2/6 < 0.24`, and `|x| < π + 0.24`. FFJORD uses
/// `noise = 0.1` (the default of [`Dataset::TwoSpirals`]).
///
/// ```
/// use rand::SeedableRng;
/// let x = normflow::data::two_spirals(500, 0.1, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert_eq!(x.shape(), (2, 500));
/// ```
pub fn two_spirals(n: usize, noise: f64, rng: &mut dyn Rng) -> DMatrix<f64> {
    let mut x = DMatrix::zeros(2, n);
    for j in 0..n {
        let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
        let t = rng.random::<f64>().sqrt() * 540.0 * (2.0 * PI) / 360.0;
        let d1 = -t.cos() * t + 0.5 * rng.random::<f64>();
        let d2 = t.sin() * t + 0.5 * rng.random::<f64>();
        x[(0, j)] = sign * d1 / 3.0 + noise * normal(rng);
        x[(1, j)] = sign * d2 / 3.0 + noise * normal(rng);
    }
    x
}

/// The built-in toy data sets, by name, with default parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// [`two_moons`] with `noise = 0.05`.
    TwoMoons,
    /// [`circles`] with `noise = 0.05`, `factor = 0.5`.
    Circles,
    /// [`checkerboard`].
    Checkerboard,
    /// [`eight_gaussians`] with `scale = 2`, `noise = 0.25`.
    EightGaussians,
    /// [`pinwheel`].
    Pinwheel,
    /// [`two_spirals`] with `noise = 0.1`.
    TwoSpirals,
    /// Two angles on the torus `[−π, π)²`: [`TorusMixture::two_angles`], a
    /// mixture of three products of von Mises distributions (exact
    /// log-density: [`TorusMixture::log_density`]).
    Torus,
}

impl Dataset {
    /// Every data set, in a fixed order.
    pub const ALL: &'static [Dataset] = &[
        Dataset::TwoMoons,
        Dataset::Circles,
        Dataset::Checkerboard,
        Dataset::EightGaussians,
        Dataset::Pinwheel,
        Dataset::TwoSpirals,
        Dataset::Torus,
    ];

    /// The short name (`"moons"`, `"circles"`, `"checkerboard"`,
    /// `"8gaussians"`, `"pinwheel"`, `"spirals"`), as accepted by
    /// [`Dataset::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Dataset::TwoMoons => "moons",
            Dataset::Circles => "circles",
            Dataset::Checkerboard => "checkerboard",
            Dataset::EightGaussians => "8gaussians",
            Dataset::Pinwheel => "pinwheel",
            Dataset::TwoSpirals => "spirals",
            Dataset::Torus => "torus",
        }
    }

    /// The data set called `name` (exactly as [`Dataset::name`] spells it).
    ///
    /// ```
    /// use normflow::data::Dataset;
    /// assert_eq!(Dataset::from_name("8gaussians"), Some(Dataset::EightGaussians));
    /// assert_eq!(Dataset::from_name("nope"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Dataset> {
        Dataset::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// A one-line description, with the default parameters.
    pub fn description(self) -> &'static str {
        match self {
            Dataset::TwoMoons => "two interleaving half circles (sklearn make_moons, noise 0.05)",
            Dataset::Circles => {
                "two concentric circles, radii 1 and 0.5 (sklearn make_circles, noise 0.05)"
            }
            Dataset::Checkerboard => "uniform on the 8 black squares of a 4x4 board on [-2, 2]^2",
            Dataset::EightGaussians => "8 Gaussians (std 0.25) on a circle of radius 2",
            Dataset::Pinwheel => "5-arm pinwheel (Johnson et al. 2016), radius about 2",
            Dataset::TwoSpirals => "two interleaved spirals (FFJORD 2spirals, noise 0.1)",
            Dataset::Torus => {
                "two angles in [-pi, pi): a mixture of 3 products of von Mises (for circular_spline)"
            }
        }
    }

    /// `n` samples (`2 × n`, one column each) with the default parameters.
    ///
    /// ```
    /// use normflow::data::Dataset;
    /// use rand::SeedableRng;
    /// let x = Dataset::Pinwheel.generate(10, &mut rand::rngs::StdRng::seed_from_u64(1));
    /// assert_eq!(x.shape(), (2, 10));
    /// ```
    pub fn generate(self, n: usize, rng: &mut dyn Rng) -> DMatrix<f64> {
        match self {
            Dataset::TwoMoons => two_moons(n, 0.05, rng),
            Dataset::Circles => circles(n, 0.05, 0.5, rng),
            Dataset::Checkerboard => checkerboard(n, rng),
            Dataset::EightGaussians => eight_gaussians(n, 2.0, 0.25, rng),
            Dataset::Pinwheel => pinwheel(n, rng),
            Dataset::TwoSpirals => two_spirals(n, 0.1, rng),
            Dataset::Torus => TorusMixture::two_angles().sample(n, rng),
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
