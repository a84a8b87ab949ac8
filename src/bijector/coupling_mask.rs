use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::check;

/// Which coordinates a coupling layer transforms and which it conditions on.
///
/// `transformed()[i]` is `true` for a coordinate that the layer changes (the
/// `B` half of `y_B = x_B ⊙ s(x_A) + t(x_A)`), `false` for one it passes
/// through unchanged and feeds to the conditioner (the `A` half). A mask must
/// select at least one coordinate of each kind, so couplings need `D ≥ 2`.
///
/// ```
/// use normflow::bijector::CouplingMask;
/// let m = CouplingMask::half(5, false)?;
/// assert_eq!(m.identity_indices(), &[0, 1]);     // first ⌊D/2⌋ condition
/// assert_eq!(m.transformed_indices(), &[2, 3, 4]);
/// assert_eq!(m.complement().identity_indices(), &[2, 3, 4]);
/// assert!(CouplingMask::new(vec![true, true]).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<bool>", into = "Vec<bool>")]
pub struct CouplingMask {
    transformed: Vec<bool>,
    identity_idx: Vec<usize>,
    transformed_idx: Vec<usize>,
}

impl CouplingMask {
    /// From an explicit mask (`true` = transformed). Errors if the mask is
    /// empty, or selects nothing or everything.
    pub fn new(transformed: Vec<bool>) -> Result<Self, Error> {
        const CTX: &str = "CouplingMask::new";
        check::dim_at_least_one(CTX, "mask", transformed.len())?;
        let identity_idx: Vec<usize> = (0..transformed.len())
            .filter(|&i| !transformed[i])
            .collect();
        let transformed_idx: Vec<usize> =
            (0..transformed.len()).filter(|&i| transformed[i]).collect();
        if transformed_idx.is_empty() {
            return Err(check::invalid(
                CTX,
                "mask",
                "a mask that transforms at least one coordinate",
                format!("{transformed:?} (selects nothing)"),
            ));
        }
        if identity_idx.is_empty() {
            return Err(check::invalid(
                CTX,
                "mask",
                "a mask that leaves at least one coordinate unchanged",
                format!("{transformed:?} (selects everything)"),
            ));
        }
        Ok(Self {
            transformed,
            identity_idx,
            transformed_idx,
        })
    }

    /// Halves: the first `⌊D/2⌋` coordinates condition, the rest are
    /// transformed (`flip` swaps the roles). Errors if `dim < 2`.
    pub fn half(dim: usize, flip: bool) -> Result<Self, Error> {
        Self::check_dim("CouplingMask::half", dim)?;
        Self::new((0..dim).map(|i| (i >= dim / 2) != flip).collect())
    }

    /// Alternating: even coordinates condition, odd ones are transformed
    /// (`flip` swaps the roles). Errors if `dim < 2`.
    pub fn alternating(dim: usize, flip: bool) -> Result<Self, Error> {
        Self::check_dim("CouplingMask::alternating", dim)?;
        Self::new((0..dim).map(|i| (i % 2 == 1) != flip).collect())
    }

    fn check_dim(context: &str, dim: usize) -> Result<(), Error> {
        if dim < 2 {
            return Err(Error::InvalidDimension {
                context: context.into(),
                argument: "dim".into(),
                expected: "at least 2 (a coupling needs a coordinate to condition on and one to transform)"
                    .into(),
                got: dim,
            });
        }
        Ok(())
    }

    /// The mask with the roles swapped (used between consecutive couplings).
    pub fn complement(&self) -> Self {
        Self::new(self.transformed.iter().map(|t| !t).collect())
            .expect("complement of a valid mask is valid")
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.transformed.len()
    }

    /// `true` for transformed coordinates.
    pub fn as_slice(&self) -> &[bool] {
        &self.transformed
    }

    /// Indices passed through unchanged (the conditioner's input).
    pub fn identity_indices(&self) -> &[usize] {
        &self.identity_idx
    }

    /// Indices that are transformed.
    pub fn transformed_indices(&self) -> &[usize] {
        &self.transformed_idx
    }
}

impl TryFrom<Vec<bool>> for CouplingMask {
    type Error = Error;
    fn try_from(v: Vec<bool>) -> Result<Self, Error> {
        CouplingMask::new(v)
    }
}

impl From<CouplingMask> for Vec<bool> {
    fn from(m: CouplingMask) -> Vec<bool> {
        m.transformed
    }
}

impl CouplingMask {
    /// The rows of `x` at `idx`, as a new `|idx| × n` matrix.
    pub(crate) fn gather<T: crate::Real>(
        idx: &[usize],
        x: &nalgebra::DMatrix<T>,
    ) -> nalgebra::DMatrix<T> {
        nalgebra::DMatrix::from_fn(idx.len(), x.ncols(), |r, c| x[(idx[r], c)])
    }
}
