//! PNG pictures of models and data: a density heat map with a colour bar
//! (2-D models), a corner plot of samples against data (any dimension),
//! samples beside data, and a loss curve.
//!
//! Text is drawn with an embedded font (DejaVu Sans, licence in
//! `cli/assets/DejaVuSans-LICENSE.txt`), so no system font library is
//! needed. Every picture is drawn into a temporary file beside the target and
//! renamed over it, so an interrupted run never leaves half a picture.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Once;

use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::train::{EpochRecord, FlowModel};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// DejaVu Sans, embedded so that text needs no system font.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

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

type DrawResult<T> = std::result::Result<T, Box<dyn StdError>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

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
        if self.width < 200 || self.height < 150 || self.width > 10_000 || self.height > 10_000 {
            return Err(format!(
                "a picture of {}×{} pixels is outside the supported 200×150 to 10000×10000",
                self.width, self.height
            ));
        }
        Ok(self)
    }
}

/// Draws a picture into `path` (which must end in `.png`) through a
/// temporary file and a rename.
fn draw_png(
    path: &Path,
    size: Size,
    draw: impl FnOnce(&Area<'_>) -> DrawResult<()>,
) -> crate::Result<()> {
    register_font();
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(format!(
            "{}: pictures are written as PNG; use a file name ending in .png",
            path.display()
        ));
    }
    let tmp = temp_path(path);
    let result = (|| -> DrawResult<()> {
        let root = BitMapBackend::new(&tmp, (size.width, size.height)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{}: could not draw the picture: {e}",
            path.display()
        ));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: could not write the picture: {e}", path.display())
    })
}

/// A temporary name beside `path` that still ends in `.png` (the encoder
/// picks the format from the extension).
fn temp_path(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plot.png".into());
    dir.join(format!(".{name}.tmp-{}.png", std::process::id()))
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

/// Tick labels with as many decimals as the axis needs, and no "-0.0".
fn ticks(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let step = (hi - lo).abs() / 10.0;
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        1
    };
    move |v: &f64| {
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

fn title_style(size: Size) -> TextStyle<'static> {
    (FAMILY, (size.height as f64 / 28.0).clamp(14.0, 24.0))
        .into_font()
        .into()
}

fn label_font(px: f64) -> TextStyle<'static> {
    (FAMILY, px).into_font().into()
}

/// Model samples for ranges and scatter plots.
fn model_samples(model: &FlowModel<f64>, n: usize, seed: u64) -> DMatrix<f64> {
    model.sample(n, &mut StdRng::seed_from_u64(seed))
}

/// The picture of a model: a heat map of the density for a 2-D model,
/// a corner plot of samples against `data` otherwise.
pub fn model_png(
    path: &Path,
    model: &FlowModel<f64>,
    data: Option<&DMatrix<f64>>,
    size: Size,
    title: &str,
) -> crate::Result<()> {
    if model.dim() == 2 {
        density_png(path, model, data, size, title)
    } else {
        let samples = model_samples(model, MAX_POINTS, 1);
        corner_png(path, &samples, data, size, title)
    }
}

/// A heat map of the density `exp(log p)` of a 2-D model on a grid (one cell
/// per pixel) covering `data` (or model samples when there is no data), with
/// a colour bar, and `data` drawn over it as small white points.
pub fn density_png(
    path: &Path,
    model: &FlowModel<f64>,
    data: Option<&DMatrix<f64>>,
    size: Size,
    title: &str,
) -> crate::Result<()> {
    assert_eq!(model.dim(), 2, "density_png needs a 2-D model");
    let samples = model_samples(model, MAX_POINTS, 1);
    let sets: Vec<&DMatrix<f64>> = match data {
        Some(d) => vec![d],
        None => vec![&samples],
    };
    let (x0, x1) = axis_range(&sets, 0, 0.1);
    let (y0, y1) = axis_range(&sets, 1, 0.1);
    let overlay = data.map(|d| inside(&thin(d, MAX_OVERLAY), (x0, x1), (y0, y1)));
    let (fx, fy) = (ticks(x0, x1), ticks(y0, y1));
    draw_png(path, size, |root| {
        let bar_width = 100.min(size.width / 5);
        let (main, bar) = root.split_horizontally(size.width - bar_width);
        let mut chart = ChartBuilder::on(&main)
            .caption(title, title_style(size))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x1")
            .y_desc("x2")
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .label_style(label_font(13.0))
            .axis_desc_style(label_font(15.0))
            .draw()?;
        // One grid cell per pixel of the plotting area.
        let (nx, ny) = chart.plotting_area().dim_in_pixel();
        let (nx, ny) = (nx.max(2) as usize, ny.max(2) as usize);
        let (dx, dy) = ((x1 - x0) / nx as f64, (y1 - y0) / ny as f64);
        let grid = DMatrix::from_fn(2, nx * ny, |i, k| {
            if i == 0 {
                x0 + (k % nx) as f64 * dx + 0.5 * dx
            } else {
                y0 + (k / nx) as f64 * dy + 0.5 * dy
            }
        });
        let density: Vec<f64> = model
            .log_prob(&grid)
            .iter()
            .map(|lp| {
                let p = lp.exp();
                if p.is_finite() { p } else { 0.0 }
            })
            .collect();
        let max = density.iter().copied().fold(0.0, f64::max);
        let scale = if max > 0.0 { max } else { 1.0 };
        chart.draw_series((0..nx * ny).map(|k| {
            let (x, y) = (x0 + (k % nx) as f64 * dx, y0 + (k / nx) as f64 * dy);
            Rectangle::new(
                [(x, y), (x + dx, y + dy)],
                viridis(density[k] / scale).filled(),
            )
        }))?;
        if let Some(o) = &overlay {
            chart.draw_series(
                o.column_iter()
                    .map(|c| Circle::new((c[0], c[1]), 1, WHITE.mix(0.7).filled())),
            )?;
        }
        let (_, rows) = chart.plotting_area().get_pixel_range();
        colour_bar(&bar, scale, rows.start, size.height as i32 - rows.end)?;
        Ok(())
    })
}

/// A vertical colour bar from 0 to `max`, its top and bottom aligned with
/// the heat map's plotting area.
fn colour_bar(area: &Area<'_>, max: f64, top: i32, bottom: i32) -> DrawResult<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(top)
        .margin_bottom(bottom)
        .margin_left(6)
        .margin_right(4)
        .set_label_area_size(LabelAreaPosition::Right, 48)
        .build_cartesian_2d(0.0..1.0, 0.0..max)?;
    let fmt = |v: &f64| {
        if max >= 100.0 {
            format!("{v:.0}")
        } else if max >= 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&fmt)
        .y_desc("density")
        .label_style(label_font(12.0))
        .axis_desc_style(label_font(14.0))
        .draw()?;
    let steps = 256;
    chart.draw_series((0..steps).map(|k| {
        let (a, b) = (k as f64 / steps as f64, (k + 1) as f64 / steps as f64);
        Rectangle::new(
            [(0.0, a * max), (1.0, b * max)],
            viridis((a + b) / 2.0).filled(),
        )
    }))?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, 0.0), (1.0, max)],
        BLACK.stroke_width(1),
    )))?;
    Ok(())
}

/// Per-dimension histogram bars: `(left, right, density)` over `bins` bins
/// of `[lo, hi]` (points outside are left out; heights integrate to the
/// fraction inside).
fn histogram(v: impl Iterator<Item = f64>, lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64, f64)> {
    let mut counts = vec![0usize; bins];
    let mut n = 0usize;
    let w = (hi - lo) / bins as f64;
    for x in v {
        n += 1;
        if x >= lo && x < hi {
            counts[(((x - lo) / w) as usize).min(bins - 1)] += 1;
        }
    }
    let n = n.max(1) as f64;
    counts
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            let a = lo + k as f64 * w;
            (a, a + w, c as f64 / (n * w))
        })
        .collect()
}

/// A corner plot: for every pair of dimensions below the diagonal, a scatter
/// of `samples` (and of `data`, in a second colour); on the diagonal, the
/// histograms of each dimension; a legend in the free upper corner. Shows
/// the first [`MAX_CORNER_DIMS`] dimensions.
pub fn corner_png(
    path: &Path,
    samples: &DMatrix<f64>,
    data: Option<&DMatrix<f64>>,
    size: Size,
    title: &str,
) -> crate::Result<()> {
    let d_all = samples.nrows();
    let d = d_all.min(MAX_CORNER_DIMS);
    let samples = thin(samples, MAX_POINTS);
    let data = data.map(|x| thin(x, MAX_POINTS));
    let mut sets = vec![&samples];
    if let Some(x) = &data {
        sets.push(x);
    }
    let ranges: Vec<(f64, f64)> = (0..d).map(|i| axis_range(&sets, i, 0.05)).collect();
    let title = if d < d_all {
        format!("{title} (first {d} of {d_all} dimensions)")
    } else {
        title.to_string()
    };
    draw_png(path, size, |root| {
        let root = root.titled(&title, title_style(size))?;
        let panels = root.split_evenly((d, d));
        let tick = (size.width.min(size.height) as f64 / d as f64 / 16.0).clamp(8.0, 12.0);
        for (k, panel) in panels.iter().enumerate() {
            let (r, c) = (k / d, k % d);
            if c > r {
                continue;
            }
            let mut builder = ChartBuilder::on(panel);
            builder.margin(4);
            if r == d - 1 {
                builder.x_label_area_size(2.5 * tick + 16.0);
            }
            if c == 0 {
                builder.y_label_area_size(4.0 * tick + 18.0);
            }
            let (x0, x1) = ranges[c];
            let (y0, y1) = ranges[r];
            let (fx, fy) = (ticks(x0, x1), ticks(y0, y1));
            if r == c {
                let bins = 30;
                let hs = histogram(samples.row(c).iter().copied(), x0, x1, bins);
                let hd = data
                    .as_ref()
                    .map(|x| histogram(x.row(c).iter().copied(), x0, x1, bins));
                let top = hs
                    .iter()
                    .chain(hd.iter().flatten())
                    .map(|b| b.2)
                    .fold(0.0, f64::max)
                    .max(1e-12)
                    * 1.1;
                let mut chart = builder.build_cartesian_2d(x0..x1, 0.0..top)?;
                let mut mesh = chart.configure_mesh();
                mesh.disable_mesh()
                    .disable_y_axis()
                    .x_labels(4)
                    .x_label_formatter(&fx)
                    .label_style(label_font(tick));
                if r == d - 1 {
                    mesh.x_desc(format!("x{}", c + 1))
                        .axis_desc_style(label_font(tick + 2.0));
                }
                mesh.draw()?;
                if let Some(hd) = &hd {
                    chart.draw_series(hd.iter().map(|&(a, b, h)| {
                        Rectangle::new([(a, 0.0), (b, h)], DATA_COLOUR.mix(0.45).filled())
                    }))?;
                }
                chart.draw_series(hs.iter().map(|&(a, b, h)| {
                    Rectangle::new([(a, 0.0), (b, h)], SAMPLE_COLOUR.mix(0.45).filled())
                }))?;
            } else {
                let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
                let mut mesh = chart.configure_mesh();
                mesh.disable_mesh()
                    .x_labels(4)
                    .y_labels(4)
                    .x_label_formatter(&fx)
                    .y_label_formatter(&fy)
                    .label_style(label_font(tick))
                    .axis_desc_style(label_font(tick + 2.0));
                if r == d - 1 {
                    mesh.x_desc(format!("x{}", c + 1));
                }
                if c == 0 {
                    mesh.y_desc(format!("x{}", r + 1));
                }
                mesh.draw()?;
                let within = |p: &[f64]| (x0..=x1).contains(&p[c]) && (y0..=y1).contains(&p[r]);
                if let Some(x) = &data {
                    chart.draw_series(
                        x.column_iter()
                            .filter(|p| within(p.as_slice()))
                            .map(|p| Circle::new((p[c], p[r]), 1, DATA_COLOUR.mix(0.5).filled())),
                    )?;
                }
                chart.draw_series(
                    samples
                        .column_iter()
                        .filter(|p| within(p.as_slice()))
                        .map(|p| Circle::new((p[c], p[r]), 1, SAMPLE_COLOUR.mix(0.5).filled())),
                )?;
            }
        }
        // The legend, in the free upper-right panel (or the top-right corner
        // of a single panel).
        let legend_area = if d > 1 { &panels[d - 1] } else { &panels[0] };
        let (w, _) = legend_area.dim_in_pixel();
        let font = label_font(tick + 3.0);
        let mut entries = vec![("model samples", SAMPLE_COLOUR)];
        if data.is_some() {
            entries.push(("data", DATA_COLOUR));
        }
        for (i, (name, colour)) in entries.iter().enumerate() {
            let y = 14 + 22 * i as i32;
            let x = if d > 1 { 12 } else { w as i32 - 130 };
            legend_area.draw(&Rectangle::new(
                [(x, y - 6), (x + 12, y + 6)],
                colour.filled(),
            ))?;
            legend_area.draw(&Text::new(*name, (x + 18, y - 7), font.clone()))?;
        }
        Ok(())
    })
}

/// Two panels with the same axes: `data` (left) and `samples` (right), for
/// 2-D point sets.
pub fn samples_png(
    path: &Path,
    data: &DMatrix<f64>,
    samples: &DMatrix<f64>,
    size: Size,
    title: &str,
) -> crate::Result<()> {
    let data = thin(data, MAX_POINTS);
    let samples = thin(samples, MAX_POINTS);
    let (x0, x1) = axis_range(&[&data, &samples], 0, 0.08);
    let (y0, y1) = axis_range(&[&data, &samples], 1, 0.08);
    let shown = |x: &DMatrix<f64>| inside(x, (x0, x1), (y0, y1));
    let (data_in, samples_in) = (shown(&data), shown(&samples));
    let (fx, fy) = (ticks(x0, x1), ticks(y0, y1));
    draw_png(path, size, |root| {
        let root = root.titled(title, title_style(size))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (name, all, pts, colour)) in panels.iter().zip([
            ("data", &data, &data_in, DATA_COLOUR),
            ("model samples", &samples, &samples_in, SAMPLE_COLOUR),
        ]) {
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{name} ({} points)", all.ncols()), label_font(15.0))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(48)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            chart
                .configure_mesh()
                .light_line_style(BLACK.mix(0.06))
                .bold_line_style(BLACK.mix(0.12))
                .x_desc("x1")
                .y_desc("x2")
                .x_label_formatter(&fx)
                .y_label_formatter(&fy)
                .label_style(label_font(12.0))
                .axis_desc_style(label_font(14.0))
                .draw()?;
            chart.draw_series(
                pts.column_iter()
                    .map(|p| Circle::new((p[0], p[1]), 1, colour.mix(0.6).filled())),
            )?;
        }
        Ok(())
    })
}

/// Training and validation negative log-likelihood per epoch.
pub fn loss_png(
    path: &Path,
    history: &[EpochRecord],
    size: Size,
    title: &str,
) -> crate::Result<()> {
    if history.is_empty() {
        return Err(format!("{}: no epochs to plot", path.display()));
    }
    let values: Vec<f64> = history
        .iter()
        .flat_map(|r| std::iter::once(r.train_nll).chain(r.valid_nll))
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad)
    } else {
        (0.0, 1.0)
    };
    let first = history[0].epoch as f64;
    let last = history[history.len() - 1].epoch as f64;
    let (e0, e1) = if last > first {
        (first, last)
    } else {
        (first - 0.5, first + 0.5)
    };
    draw_png(path, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, title_style(size))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(60)
            .build_cartesian_2d(e0..e1, lo..hi)?;
        chart
            .configure_mesh()
            .light_line_style(BLACK.mix(0.05))
            .bold_line_style(BLACK.mix(0.12))
            .x_desc("epoch")
            .y_desc("negative log-likelihood (nats)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style(label_font(13.0))
            .axis_desc_style(label_font(15.0))
            .draw()?;
        let train: Vec<(f64, f64)> = history
            .iter()
            .map(|r| (r.epoch as f64, r.train_nll))
            .collect();
        chart
            .draw_series(LineSeries::new(train.clone(), DATA_COLOUR.stroke_width(2)))?
            .label("training")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], DATA_COLOUR.stroke_width(2)));
        chart.draw_series(
            train
                .iter()
                .map(|&p| Circle::new(p, 2, DATA_COLOUR.filled())),
        )?;
        let valid: Vec<(f64, f64)> = history
            .iter()
            .filter_map(|r| r.valid_nll.map(|v| (r.epoch as f64, v)))
            .collect();
        if !valid.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    valid.clone(),
                    SAMPLE_COLOUR.stroke_width(2),
                ))?
                .label("validation")
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], SAMPLE_COLOUR.stroke_width(2))
                });
            chart.draw_series(
                valid
                    .iter()
                    .map(|&p| Circle::new(p, 2, SAMPLE_COLOUR.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(label_font(14.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    })
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
    fn histogram_integrates_to_one() {
        let v = (0..1000).map(|k| k as f64 / 1000.0);
        let h = histogram(v, 0.0, 1.0, 10);
        let area: f64 = h.iter().map(|(a, b, d)| (b - a) * d).sum();
        assert!((area - 1.0).abs() < 1e-12, "{area}");
    }
}
