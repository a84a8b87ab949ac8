//! Neal's funnel in any dimension `D ≥ 2`.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution as _, StandardNormal};

use crate::train::LogDensity;
use crate::{Error, Real};

/// The standard deviation of the funnel's neck `v`.
const V_SCALE: f64 = 3.0;

/// Neal's funnel (Neal 2003, "Slice sampling", *Annals of Statistics* 31(3),
/// §8): `v ~ N(0, 3²)` and, given `v`, `x_i ~ N(0, eᵛ)` independently for
/// `i = 1..D−1`. Coordinates `(v, x₁, …, x_{D−1})`; the density is
/// normalised (`log Z = 0`).
///
/// The log-density is
///
/// `log p(v, x) = log N(v; 0, 3²) + Σᵢ log N(xᵢ; 0, eᵛ)
///             = −½ log 2π − log 3 − v²/18 + Σᵢ (−½ log 2π − v/2 − ½ xᵢ² e^{−v})`,
///
/// with gradient `∂/∂v = −v/9 − (D−1)/2 + ½ e^{−v} Σᵢ xᵢ²` and
/// `∂/∂xᵢ = −xᵢ e^{−v}`, both written out by hand (no automatic
/// differentiation), evaluated in `f64` and rounded to `T`.
///
/// Its scales differ by orders of magnitude between the neck (`v ≪ 0`) and
/// the mouth (`v ≫ 0`), which no single step size of a Hamiltonian sampler
/// suits: the standard test of samplers and of preconditioning. Exact draws
/// ([`sample`](Self::sample)) give the truth to compare them with. Neal's
/// own example has `D = 10` (the [`Default`]).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::bayes::NealFunnel;
/// use normflow::train::LogDensity;
/// use rand::SeedableRng;
///
/// let funnel = NealFunnel::new(3)?;
/// // At the origin: log N(0; 0, 3²) + 2 log N(0; 0, 1).
/// let lp = funnel.log_density(&DMatrix::<f64>::zeros(3, 1))[0];
/// let l2pi = (2.0 * std::f64::consts::PI).ln();
/// assert!((lp - (-1.5 * l2pi - 3f64.ln())).abs() < 1e-12);
///
/// // Exact draws: v has standard deviation 3.
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let x = funnel.sample(20_000, &mut rng);
/// let v_std = (x.row(0).iter().map(|v| v * v).sum::<f64>() / 20_000.0).sqrt();
/// assert!((v_std - 3.0).abs() < 0.1);
///
/// // A funnel needs the neck and at least one x.
/// assert!(NealFunnel::new(1).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NealFunnel {
    /// The dimension `D ≥ 2`: the neck `v` and `D − 1` coordinates `xᵢ`.
    pub dim: usize,
}

impl Default for NealFunnel {
    /// Neal's ten-dimensional funnel (`v` and nine `xᵢ`).
    fn default() -> Self {
        Self { dim: 10 }
    }
}

impl NealFunnel {
    /// The funnel in dimension `dim` (`v` and `dim − 1` coordinates `xᵢ`).
    ///
    /// # Errors
    /// [`Error::InvalidDimension`] if `dim < 2`.
    pub fn new(dim: usize) -> Result<Self, Error> {
        if dim < 2 {
            return Err(Error::InvalidDimension {
                context: "NealFunnel::new".into(),
                argument: "dim".into(),
                expected: "at least 2 (the neck v and at least one x)".into(),
                got: dim,
            });
        }
        Ok(Self { dim })
    }

    /// `log Z = 0`: the density is normalised.
    pub fn log_normalizer(&self) -> f64 {
        0.0
    }

    /// `n` exact, independent draws as a `D × n` matrix (one column per
    /// draw): `v = 3 z₀`, `xᵢ = e^{v/2} zᵢ` with `z` standard normal.
    pub fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<f64> {
        let mut out = DMatrix::zeros(self.dim, n);
        for mut col in out.column_iter_mut() {
            let z0: f64 = StandardNormal.sample(rng);
            let v = V_SCALE * z0;
            let s = (0.5 * v).exp();
            col[0] = v;
            for x in col.iter_mut().skip(1) {
                let z: f64 = StandardNormal.sample(rng);
                *x = s * z;
            }
        }
        out
    }

    /// `log p` at one point, writing `∇ log p` into `grad` when given.
    fn eval(&self, p: &[f64], grad: Option<&mut [f64]>) -> f64 {
        let l2pi = (2.0 * std::f64::consts::PI).ln();
        let m = (p.len() - 1) as f64;
        let v = p[0];
        let e = (-v).exp();
        let ss: f64 = p[1..].iter().map(|x| x * x).sum();
        // ½ Σ xᵢ² e^{−v}, which is 0 at x = 0 even where e^{−v} overflows.
        let sse = if ss == 0.0 { 0.0 } else { ss * e };
        let lp = -0.5 * l2pi - V_SCALE.ln() - 0.5 * v * v / (V_SCALE * V_SCALE)
            + m * (-0.5 * l2pi - 0.5 * v)
            - 0.5 * sse;
        if let Some(g) = grad {
            g[0] = -v / (V_SCALE * V_SCALE) - 0.5 * m + 0.5 * sse;
            for (gi, xi) in g[1..].iter_mut().zip(&p[1..]) {
                *gi = -xi * e;
            }
        }
        lp
    }

    /// Checks the batch and evaluates every column.
    fn evaluate<T: Real>(&self, x: &DMatrix<T>, with_grad: bool) -> (DVector<T>, DMatrix<T>) {
        assert!(
            self.dim >= 2,
            "NealFunnel: dim must be at least 2, got {}",
            self.dim
        );
        crate::batch::assert_rows("NealFunnel", self.dim, x);
        let (d, n) = x.shape();
        let mut lp = DVector::zeros(n);
        let mut grad = DMatrix::zeros(if with_grad { d } else { 0 }, n);
        let mut point = vec![0.0; d];
        let mut g = vec![0.0; d];
        for j in 0..n {
            for (p, v) in point.iter_mut().zip(x.column(j).iter()) {
                *p = v.to_f64();
            }
            if with_grad {
                lp[j] = T::lit(self.eval(&point, Some(&mut g)));
                for (i, gi) in g.iter().enumerate() {
                    grad[(i, j)] = T::lit(*gi);
                }
            } else {
                lp[j] = T::lit(self.eval(&point, None));
            }
        }
        (lp, grad)
    }
}

impl<T: Real> LogDensity<T> for NealFunnel {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.evaluate(x, false).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        self.evaluate(x, true)
    }
}
