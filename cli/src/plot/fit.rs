//! Pictures of a fit: data beside model samples, and the loss per epoch.

use crate::output::Output;

use nalgebra::DMatrix;
use normflow::train::EpochRecord;
use plotters::prelude::*;

use super::{
    DATA_COLOUR, MAX_POINTS, SAMPLE_COLOUR, Size, axis_range, draw_png, inside, label_font, thin,
    ticks, title_style,
};

/// Two panels with the same axes: `data` (left) and `samples` (right), for
/// 2-D point sets.
pub fn samples_png(
    out: &Output,
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
    draw_png(out, size, |root| {
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

/// One line of a per-epoch picture: `(epoch, value)` points.
pub struct Curve {
    /// The legend entry.
    pub name: &'static str,
    /// The line colour.
    pub colour: RGBColor,
    /// The points; non-finite values are left out.
    pub points: Vec<(f64, f64)>,
}

/// Lines over epochs with a legend (the loss and ELBO curves): the axes
/// cover every finite point with 8 % padding; `markers` adds a dot per
/// point; empty curves are skipped.
pub fn curves_png(
    out: &Output,
    size: Size,
    title: &str,
    y_desc: &str,
    curves: &[Curve],
    markers: bool,
    legend: SeriesLabelPosition,
) -> crate::Result<()> {
    let finite = |c: &Curve| -> Vec<(f64, f64)> {
        c.points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect()
    };
    let shown: Vec<Vec<(f64, f64)>> = curves.iter().map(finite).collect();
    let all: Vec<(f64, f64)> = shown.iter().flatten().copied().collect();
    if all.is_empty() {
        return Err(format!("{}: no epochs to plot", out.path().display()));
    }
    let range = |pick: fn(&(f64, f64)) -> f64| {
        let lo = all.iter().map(pick).fold(f64::INFINITY, f64::min);
        let hi = all.iter().map(pick).fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    let (lo, hi) = range(|p| p.1);
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let (first, last) = range(|p| p.0);
    let (e0, e1) = if last > first {
        (first, last)
    } else {
        (first - 0.5, first + 0.5)
    };
    draw_png(out, size, |root| {
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
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style(label_font(13.0))
            .axis_desc_style(label_font(15.0))
            .draw()?;
        for (curve, pts) in curves.iter().zip(&shown) {
            if pts.is_empty() {
                continue;
            }
            let colour = curve.colour;
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
                .label(curve.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            if markers {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 2, colour.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .position(legend)
            .label_font(label_font(14.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    })
}

/// Training and validation negative log-likelihood per epoch.
pub fn loss_png(
    out: &Output,
    history: &[EpochRecord],
    size: Size,
    title: &str,
) -> crate::Result<()> {
    let curves = [
        Curve {
            name: "training",
            colour: DATA_COLOUR,
            points: history
                .iter()
                .map(|r| (r.epoch as f64, r.train_nll))
                .collect(),
        },
        Curve {
            name: "validation",
            colour: SAMPLE_COLOUR,
            points: history
                .iter()
                .filter_map(|r| r.valid_nll.map(|v| (r.epoch as f64, v)))
                .collect(),
        },
    ];
    curves_png(
        out,
        size,
        title,
        "negative log-likelihood (nats)",
        &curves,
        true,
        SeriesLabelPosition::UpperRight,
    )
}
