//! PNG pictures of models and data: a density heat map with a colour bar
//! (2-D models), a corner plot of samples against data (any dimension),
//! samples beside data, and a loss curve.
//!
//! Text is drawn with an embedded font (DejaVu Sans, licence in
//! `cli/assets/DejaVuSans-LICENSE.txt`), so no system font library is
//! needed. Every picture is drawn into a temporary file beside the target and
//! renamed over it, so an interrupted run never leaves half a picture.

mod corner;
mod density;
mod fit;

use std::error::Error as StdError;
use std::sync::Once;

use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::train::FlowModel;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::output::Output;

pub use corner::corner_png;
pub use density::density_png;
pub use fit::{Curve, curves_png, loss_png, samples_png};

/// DejaVu Sans, embedded so that text needs no system font.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The font family every text style here uses.
const FAMILY: &str = "sans-serif";

/// Colour of data points and histograms.
pub const DATA_COLOUR: RGBColor = RGBColor(31, 119, 180);
/// Colour of model samples.
pub const SAMPLE_COLOUR: RGBColor = RGBColor(230, 85, 13);

/// At most this many points of a data set or of model samples are drawn.
const MAX_POINTS: usize = 2000;

/// At most this many data points are drawn over a heat map.
const MAX_OVERLAY: usize = 1000;

/// At most this many dimensions are shown in a corner plot.
pub const MAX_CORNER_DIMS: usize = 6;

pub type DrawResult<T> = std::result::Result<T, Box<dyn StdError>>;
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Registers the embedded font with plotters (once per process).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to be valid.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// The size of a picture in pixels.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Size {
    /// Checks that the picture is big enough to hold axes and labels.
    pub fn validate(self) -> crate::Result<Self> {
        if self.width < 200 || self.height < 150 || self.width > 4_000 || self.height > 4_000 {
            return Err(format!(
                "a picture of {}×{} pixels is outside the supported 200×150 to 4000×4000",
                self.width, self.height
            ));
        }
        Ok(self)
    }
}

/// Draws a picture into `out` (which must end in `.png`) through a
/// temporary file and a rename (see [`crate::output`]).
pub fn draw_png(
    out: &Output,
    size: Size,
    draw: impl FnOnce(&Area<'_>) -> DrawResult<()>,
) -> crate::Result<()> {
    register_font();
    let path = out.path();
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(format!(
            "{}: pictures are written as PNG; use a file name ending in .png",
            path.display()
        ));
    }
    out.write_through_file(|tmp| {
        let result = (|| -> DrawResult<()> {
            let root = BitMapBackend::new(tmp, (size.width, size.height)).into_drawing_area();
            root.fill(&WHITE)?;
            draw(&root)?;
            root.present()?;
            Ok(())
        })();
        result.map_err(|e| format!("{}: could not draw the picture: {e}", path.display()))
    })
}

/// The viridis colour map at `t ∈ [0, 1]` (9 control points of matplotlib's
/// table, linearly interpolated).
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let s = t * (STOPS.len() - 1) as f64;
    let i = (s.floor() as usize).min(STOPS.len() - 2);
    let f = s - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// At most `max` columns of `x`, evenly strided (deterministic).
pub fn thin(x: &DMatrix<f64>, max: usize) -> DMatrix<f64> {
    let n = x.ncols();
    if n <= max {
        return x.clone();
    }
    let cols: Vec<usize> = (0..max).map(|k| k * n / max).collect();
    x.select_columns(&cols)
}

/// The columns of a 2-D point set inside a rectangle (drawn points stay
/// inside the axes).
fn inside(x: &DMatrix<f64>, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> DMatrix<f64> {
    let cols: Vec<usize> = (0..x.ncols())
        .filter(|&j| (x0..=x1).contains(&x[(0, j)]) && (y0..=y1).contains(&x[(1, j)]))
        .collect();
    x.select_columns(&cols)
}

/// The `q`-quantile of `v` (sorted in place; `v` not empty).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    v[k]
}

/// A range covering the central part of every given row `i` of the point
/// sets (0.5 % to 99.5 % quantiles, so a few stray samples do not shrink the
/// picture), widened by `pad` of its length on each side.
fn axis_range(sets: &[&DMatrix<f64>], i: usize, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in sets {
        let mut v: Vec<f64> = x.row(i).iter().copied().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            continue;
        }
        let (a, b) = if v.len() >= 200 {
            (quantile(&mut v, 0.005), quantile(&mut v, 0.995))
        } else {
            (quantile(&mut v, 0.0), quantile(&mut v, 1.0))
        };
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return (-1.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 1.0, hi + 1.0);
    }
    let w = hi - lo;
    (lo - pad * w, hi + pad * w)
}

/// Tick labels with as many decimals as the axis needs, and no "-0.0";
/// in scientific notation (`1.25e300`) when the values are very large or
/// the steps very small, so that labels stay short and do not overlap.
fn ticks(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let step = (hi - lo).abs() / 10.0;
    let big = lo.abs().max(hi.abs());
    let sci = big.is_nan() || big >= 1e5 || (step > 0.0 && step < 1e-4 && big > 0.0);
    let decimals = if sci {
        // Enough significant digits to tell neighbouring ticks apart.
        let ratio = if step > 0.0 { big / step } else { 1.0 };
        if ratio.is_finite() {
            ratio.log10().ceil().clamp(1.0, 6.0) as usize
        } else {
            1
        }
    } else if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        1
    };
    move |v: &f64| {
        if sci {
            return format!("{v:.decimals$e}");
        }
        let s = format!("{v:.decimals$}");
        if s.trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            s.trim_start_matches('-').to_string()
        } else {
            s
        }
    }
}

pub fn title_style(size: Size) -> TextStyle<'static> {
    (FAMILY, (size.height as f64 / 28.0).clamp(14.0, 24.0))
        .into_font()
        .into()
}

pub fn label_font(px: f64) -> TextStyle<'static> {
    (FAMILY, px).into_font().into()
}

/// Model samples for ranges and scatter plots.
fn model_samples(model: &FlowModel<f64>, n: usize, seed: u64) -> DMatrix<f64> {
    model.sample(n, &mut StdRng::seed_from_u64(seed))
}

/// The picture of a model: a heat map of the density for a 2-D model,
/// a corner plot of samples against `data` otherwise.
pub fn model_png(
    out: &Output,
    model: &FlowModel<f64>,
    data: Option<&DMatrix<f64>>,
    size: Size,
    title: &str,
) -> crate::Result<()> {
    if model.dim() == 2 {
        density_png(out, model, data, size, title)
    } else {
        let samples = model_samples(model, MAX_POINTS, 1);
        corner_png(out, &samples, data, size, title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends() {
        // matplotlib's viridis at 0 and 1.
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(f64::NAN), RGBColor(68, 1, 84));
    }

    #[test]
    fn tick_labels_stay_short_at_extreme_scales() {
        let f = ticks(1e300, 2e300);
        let label = f(&1.5e300);
        assert!(label.len() <= 12, "{label}");
        assert_eq!(label.parse::<f64>().unwrap(), 1.5e300);
        let g = ticks(1.0, 1.00001);
        assert!(g(&1.000005).contains('e'), "{}", g(&1.000005));
        // Ordinary axes keep plain decimals.
        assert_eq!(ticks(-3.0, 3.0)(&1.5), "1.5");
        assert_eq!(ticks(-3.0, 3.0)(&-0.0), "0.0");
    }
}
