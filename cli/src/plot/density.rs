//! The heat map of a 2-D model's density, with a colour bar.

use crate::output::Output;

use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::train::FlowModel;
use plotters::prelude::*;

use super::{
    Area, DrawResult, MAX_OVERLAY, MAX_POINTS, Size, axis_range, draw_png, inside, label_font,
    model_samples, thin, ticks, title_style, viridis,
};

/// A heat map of the density `exp(log p)` of a 2-D model on a grid (one cell
/// per pixel) covering `data` (or model samples when there is no data), with
/// a colour bar, and `data` drawn over it as small white points.
pub fn density_png(
    out: &Output,
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
    draw_png(out, size, |root| {
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
        // Evaluated in chunks, so memory does not grow with the picture.
        let chunk = crate::models::chunk_for(model.spec(), 2, 0, 16_384);
        let mut density = Vec::with_capacity(nx * ny);
        for start in (0..nx * ny).step_by(chunk) {
            let len = chunk.min(nx * ny - start);
            let grid = DMatrix::from_fn(2, len, |i, j| {
                let k = start + j;
                if i == 0 {
                    x0 + (k % nx) as f64 * dx + 0.5 * dx
                } else {
                    y0 + (k / nx) as f64 * dy + 0.5 * dy
                }
            });
            density.extend(model.log_prob(&grid).iter().map(|lp| {
                let p = lp.exp();
                if p.is_finite() { p } else { 0.0 }
            }));
        }
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
            format!("  {v:.0}")
        } else if max >= 1.0 {
            format!("  {v:.1}")
        } else {
            format!("  {v:.2}")
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        // No tick marks: a mark right before a label reads like a minus
        // sign (the labels keep their distance with a leading space).
        .set_tick_mark_size(LabelAreaPosition::Right, 0)
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
