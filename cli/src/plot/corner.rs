//! The corner plot: pairwise scatter plots and per-dimension histograms of
//! model samples against data.

use crate::output::Output;

use nalgebra::DMatrix;
use plotters::prelude::*;

use super::{
    DATA_COLOUR, MAX_CORNER_DIMS, MAX_POINTS, SAMPLE_COLOUR, Size, axis_range, draw_png,
    label_font, thin, ticks, title_style,
};

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
    out: &Output,
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
    draw_png(out, size, |root| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_integrates_to_one() {
        let v = (0..1000).map(|k| k as f64 / 1000.0);
        let h = histogram(v, 0.0, 1.0, 10);
        let area: f64 = h.iter().map(|(a, b, d)| (b - a) * d).sum();
        assert!((area - 1.0).abs() < 1e-12, "{area}");
    }
}
