//! Built-in 2-D targets for variational inference, with exact gradients.
//!
//! The four energies of Rezende & Mohamed (2015, table 1), `p̃(z) = exp(−U(z))`,
//! a banana and Neal's funnel. `U1` is proper (normaliser by quadrature);
//! `U2`–`U4` do not decay in `z₁` and are improper on `R²`, so here they are
//! multiplied by a confining Gaussian factor `exp(−½ (z₁/σ_c)²)` with
//! `σ_c = `[`CONFINING_SCALE`] (documented on each): a proper density whose
//! shape on the paper's plotting window `[−4, 4]²` is the paper's.

use nalgebra::{DMatrix, DVector};

use super::LogDensity;
use crate::Real;

/// The standard deviation `σ_c = 2` of the confining factor of `U2`–`U4`.
pub const CONFINING_SCALE: f64 = 2.0;

/// The energies `U1`–`U4` of Rezende & Mohamed (2015).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Energy {
    /// `U1(z) = ½((‖z‖ − 2)/0.4)² − log(e^{−½((z₁−2)/0.6)²} + e^{−½((z₁+2)/0.6)²})`: a ring with two lobes.
    U1,
    /// `U2(z) = ½((z₂ − w₁)/0.4)²` with `w₁ = sin(2πz₁/4)`, times the confining factor.
    U2,
    /// `U3(z) = −log(e^{−½((z₂−w₁)/0.35)²} + e^{−½((z₂−w₁+w₂)/0.35)²})`, `w₂ = 3e^{−½((z₁−1)/0.6)²}`, confined.
    U3,
    /// `U4(z) = −log(e^{−½((z₂−w₁)/0.4)²} + e^{−½((z₂−w₁+w₃)/0.35)²})`, `w₃ = 3σ((z₁−1)/0.3)`, confined.
    U4,
}

impl Energy {
    /// `log Z` of `exp(−U1)` by quadrature (2-D adaptive Simpson on
    /// `[−6, 6]²`, see the test that recomputes it): 1.8775. `None` for the
    /// confined `U2`–`U4` (compute it with
    /// `normflow::testing::check_density_normalizes`-style quadrature if needed).
    pub fn log_normalizer(self) -> Option<f64> {
        match self {
            Energy::U1 => Some(1.8775),
            _ => None,
        }
    }

    /// `(log p̃, ∂/∂z₁, ∂/∂z₂)` at one point, in `f64`.
    fn eval(self, z1: f64, z2: f64) -> (f64, f64, f64) {
        use std::f64::consts::PI;
        let lse2 = |a: f64, b: f64| -> (f64, f64, f64) {
            // log(eᵃ + eᵇ) and the softmax weights.
            let m = a.max(b);
            let (ea, eb) = ((a - m).exp(), (b - m).exp());
            let s = ea + eb;
            (m + s.ln(), ea / s, eb / s)
        };
        let confine = |lp: f64, g1: f64| -> (f64, f64) {
            let c = CONFINING_SCALE * CONFINING_SCALE;
            (lp - 0.5 * z1 * z1 / c, g1 - z1 / c)
        };
        let w1 = (2.0 * PI * z1 / 4.0).sin();
        let dw1 = (2.0 * PI / 4.0) * (2.0 * PI * z1 / 4.0).cos();
        match self {
            Energy::U1 => {
                let r = (z1 * z1 + z2 * z2).sqrt();
                let ring = 0.5 * ((r - 2.0) / 0.4).powi(2);
                let (dr1, dr2) = if r > 0.0 {
                    (z1 / r, z2 / r)
                } else {
                    (0.0, 0.0)
                };
                let dring = (r - 2.0) / 0.16;
                let a = -0.5 * ((z1 - 2.0) / 0.6).powi(2);
                let b = -0.5 * ((z1 + 2.0) / 0.6).powi(2);
                let (l, wa, wb) = lse2(a, b);
                let dl1 = wa * (-(z1 - 2.0) / 0.36) + wb * (-(z1 + 2.0) / 0.36);
                (-ring + l, -dring * dr1 + dl1, -dring * dr2)
            }
            Energy::U2 => {
                let e = (z2 - w1) / 0.4;
                let lp = -0.5 * e * e;
                let g2 = -e / 0.4;
                let (lp, g1) = confine(lp, -g2 * dw1);
                (lp, g1, g2)
            }
            Energy::U3 => {
                let w2 = 3.0 * (-0.5 * ((z1 - 1.0) / 0.6).powi(2)).exp();
                let dw2 = w2 * (-(z1 - 1.0) / 0.36);
                let ea = (z2 - w1) / 0.35;
                let eb = (z2 - w1 + w2) / 0.35;
                let (l, wa, wb) = lse2(-0.5 * ea * ea, -0.5 * eb * eb);
                let g2 = wa * (-ea / 0.35) + wb * (-eb / 0.35);
                let g1 = wa * (ea / 0.35 * dw1) + wb * (-eb / 0.35 * (dw2 - dw1));
                let (lp, g1) = confine(l, g1);
                (lp, g1, g2)
            }
            Energy::U4 => {
                let s = ((z1 - 1.0) / 0.3).sigmoid();
                let w3 = 3.0 * s;
                let dw3 = 3.0 * s * (1.0 - s) / 0.3;
                let ea = (z2 - w1) / 0.4;
                let eb = (z2 - w1 + w3) / 0.35;
                let (l, wa, wb) = lse2(-0.5 * ea * ea, -0.5 * eb * eb);
                let g2 = wa * (-ea / 0.4) + wb * (-eb / 0.35);
                let g1 = wa * (ea / 0.4 * dw1) + wb * (-eb / 0.35 * (dw3 - dw1));
                let (lp, g1) = confine(l, g1);
                (lp, g1, g2)
            }
        }
    }
}

fn pointwise<T: Real>(
    x: &DMatrix<T>,
    f: impl Fn(f64, f64) -> (f64, f64, f64),
) -> (DVector<T>, DMatrix<T>) {
    crate::batch::assert_rows("2-D target", 2, x);
    let mut lp = DVector::zeros(x.ncols());
    let mut g = DMatrix::zeros(2, x.ncols());
    for j in 0..x.ncols() {
        let (v, g1, g2) = f(x[(0, j)].to_f64(), x[(1, j)].to_f64());
        lp[j] = T::lit(v);
        g[(0, j)] = T::lit(g1);
        g[(1, j)] = T::lit(g2);
    }
    (lp, g)
}

impl<T: Real> LogDensity<T> for Energy {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_density_and_grad(x).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        pointwise(x, |a, b| self.eval(a, b))
    }
}

/// A banana: `z ~ N(0, diag(σ₁², 1))` sheared by `x₁ = z₁`,
/// `x₂ = z₂ + b (z₁² − σ₁²)` (unit Jacobian, so the density is normalised:
/// `log Z = 0`). Defaults `σ₁ = 2`, `b = 0.25`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Banana {
    /// Standard deviation of `x₁`.
    pub sigma1: f64,
    /// Curvature of the shear.
    pub b: f64,
}

impl Default for Banana {
    fn default() -> Self {
        Self {
            sigma1: 2.0,
            b: 0.25,
        }
    }
}

impl<T: Real> LogDensity<T> for Banana {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_density_and_grad(x).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        let (s1, b) = (self.sigma1, self.b);
        let c = -(2.0 * std::f64::consts::PI).ln() - s1.ln();
        pointwise(x, |x1, x2| {
            let z2 = x2 - b * (x1 * x1 - s1 * s1);
            let lp = c - 0.5 * (x1 / s1).powi(2) - 0.5 * z2 * z2;
            (lp, -x1 / (s1 * s1) + z2 * 2.0 * b * x1, -z2)
        })
    }
}

/// Neal's funnel in 2-D: `v ~ N(0, 3²)`, `x | v ~ N(0, eᵛ)`; normalised
/// (`log Z = 0`). Coordinates `(v, x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Funnel;

impl<T: Real> LogDensity<T> for Funnel {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_density_and_grad(x).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        let l2pi = (2.0 * std::f64::consts::PI).ln();
        pointwise(x, |v, y| {
            let lp = -0.5 * l2pi
                - 3f64.ln()
                - 0.5 * v * v / 9.0
                - 0.5 * l2pi
                - 0.5 * v
                - 0.5 * y * y * (-v).exp();
            (
                lp,
                -v / 9.0 - 0.5 + 0.5 * y * y * (-v).exp(),
                -y * (-v).exp(),
            )
        })
    }
}
