//! The two-angle data set: a mixture of products of von Mises distributions
//! on the torus `[−π, π)²`, with its exact log-density.

use nalgebra::DMatrix;
use rand::{Rng, RngExt};

use super::VonMises;

/// A mixture of products of von Mises distributions on the torus
/// `[−π, π)^D`: component `c` has weight `w_c` and independent angles
/// `x_d ~ VonMises(μ_cd, κ_cd)`, so that
///
/// ```text
/// p(x) = Σ_c w_c Π_d exp(κ_cd cos(x_d − μ_cd)) / (2π I₀(κ_cd))
/// ```
///
/// exactly (the normaliser by [`log_bessel_i0`](super::log_bessel_i0)).
///
/// ```
/// use normflow::data::TorusMixture;
/// use rand::SeedableRng;
/// let mix = TorusMixture::two_angles();
/// let x = mix.sample(500, &mut rand::rngs::StdRng::seed_from_u64(1));
/// assert_eq!(x.shape(), (2, 500));
/// assert!(mix.log_density(&x).iter().all(|v| v.is_finite()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TorusMixture {
    log_weights: Vec<f64>,
    components: Vec<Vec<VonMises>>,
}

impl TorusMixture {
    /// A mixture of `weights.len()` components (the weights normalised to
    /// sum to 1), component `c` the product of `components[c]`.
    ///
    /// # Panics
    /// If there are no components, the weights and components differ in
    /// number, a weight is negative or not finite or they sum to 0, or the
    /// components differ in dimension or have none.
    pub fn new(weights: &[f64], components: Vec<Vec<VonMises>>) -> Self {
        assert!(
            !weights.is_empty() && weights.len() == components.len(),
            "TorusMixture: {} weights for {} components",
            weights.len(),
            components.len()
        );
        let total: f64 = weights.iter().sum();
        assert!(
            weights.iter().all(|w| w.is_finite() && *w >= 0.0) && total > 0.0,
            "TorusMixture: weights must be finite, ≥ 0 and not all 0, got {weights:?}"
        );
        let d = components[0].len();
        assert!(
            d > 0 && components.iter().all(|c| c.len() == d),
            "TorusMixture: every component needs the same number (≥ 1) of angles"
        );
        Self {
            log_weights: weights.iter().map(|w| (w / total).ln()).collect(),
            components,
        }
    }

    /// The data set `torus` of [`Dataset`](super::Dataset): three components
    /// on two angles, weights 0.5, 0.3, 0.2, with mean directions
    /// `(−2, 2.6)`, `(1, −1)`, `(3, 0.5)` and concentrations `(4, 2)`,
    /// `(2, 6)`, `(8, 3)`: the first and third straddle the seam `±π` of one
    /// angle each.
    pub fn two_angles() -> Self {
        let vm = VonMises::new;
        Self::new(
            &[0.5, 0.3, 0.2],
            vec![
                vec![vm(-2.0, 4.0), vm(2.6, 2.0)],
                vec![vm(1.0, 2.0), vm(-1.0, 6.0)],
                vec![vm(3.0, 8.0), vm(0.5, 3.0)],
            ],
        )
    }

    /// The number of angles `D`.
    pub fn dim(&self) -> usize {
        self.components[0].len()
    }

    /// The weights, summing to 1.
    pub fn weights(&self) -> Vec<f64> {
        self.log_weights.iter().map(|l| l.exp()).collect()
    }

    /// The components: `components()[c][d]` is angle `d` of component `c`.
    pub fn components(&self) -> &[Vec<VonMises>] {
        &self.components
    }

    /// `log p(x)` of every column of `x` (`D × n`): `−∞` where an angle is
    /// outside `[−π, π)`.
    ///
    /// # Panics
    /// If `x` does not have `D` rows.
    pub fn log_density(&self, x: &DMatrix<f64>) -> Vec<f64> {
        assert_eq!(x.nrows(), self.dim(), "TorusMixture::log_density: rows");
        x.column_iter()
            .map(|p| {
                let terms: Vec<f64> = self
                    .components
                    .iter()
                    .zip(&self.log_weights)
                    .map(|(c, lw)| {
                        lw + c
                            .iter()
                            .zip(p.iter())
                            .map(|(vm, v)| vm.log_prob(*v))
                            .sum::<f64>()
                    })
                    .collect();
                let m = terms.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                if m == f64::NEG_INFINITY {
                    return m;
                }
                m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
            })
            .collect()
    }

    /// `n` draws (`D × n`, one column per sample): a component by its
    /// weight, then each angle from its von Mises distribution.
    pub fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<f64> {
        let weights = self.weights();
        let mut x = DMatrix::zeros(self.dim(), n);
        for j in 0..n {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut pick = weights.len() - 1;
            for (c, w) in weights.iter().enumerate() {
                acc += w;
                if u < acc {
                    pick = c;
                    break;
                }
            }
            for (d, vm) in self.components[pick].iter().enumerate() {
                x[(d, j)] = vm.sample(rng);
            }
        }
        x
    }
}
