//! Exported charts (plotters): the top-k prediction as bars and the deletion / insertion
//! curves of a map, as PNG or SVG. The command line and the app share this code.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::metrics::Curve;
use crate::model::Class;

/// Something to draw.
#[derive(Debug, Clone)]
pub enum Chart {
    /// The top-k classes: probability bars, labelled with the logit.
    Prediction { title: String, top: Vec<Class> },
    /// Deletion and insertion curves of one map.
    Faithfulness {
        title: String,
        deletion: Curve,
        insertion: Curve,
    },
}

const SIZE: (u32, u32) = (900, 500);

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The egui font, so charts need no system fonts.
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font("sans-serif", style, epaint_default_fonts::UBUNTU_LIGHT);
        }
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart failed: {e:?}")
}

fn draw<DB: DrawingBackend>(chart: &Chart, root: &DrawingArea<DB, Shift>) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    match chart {
        Chart::Prediction { title, top } => {
            if top.is_empty() {
                bail!("there is no prediction to draw yet");
            }
            let n = top.len();
            let labels: Vec<String> = top
                .iter()
                .map(|c| {
                    let l: String = c.label.chars().take(28).collect();
                    format!("{l} ({})", c.index)
                })
                .collect();
            let mut ch = ChartBuilder::on(root)
                .caption(title, ("sans-serif", 24))
                .margin(16)
                .x_label_area_size(36)
                .y_label_area_size(260)
                .build_cartesian_2d(0f64..1f64, (0..n).into_segmented())
                .map_err(err)?;
            ch.configure_mesh()
                .disable_y_mesh()
                .x_desc("probability")
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => (n - 1)
                        .checked_sub(*i)
                        .and_then(|k| labels.get(k))
                        .cloned()
                        .unwrap_or_default(),
                    _ => String::new(),
                })
                .label_style(("sans-serif", 16))
                .draw()
                .map_err(err)?;
            ch.draw_series(top.iter().enumerate().map(|(i, c)| {
                let row = n - 1 - i;
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row)),
                        (c.probability, SegmentValue::Exact(row + 1)),
                    ],
                    RGBColor(70, 110, 200).filled(),
                );
                bar.set_margin(6, 6, 0, 0);
                bar
            }))
            .map_err(err)?;
            ch.draw_series(top.iter().enumerate().map(|(i, c)| {
                Text::new(
                    format!("{:.1} %  (logit {:.2})", c.probability * 100.0, c.logit),
                    ((c.probability + 0.01).min(0.75), SegmentValue::CenterOf(n - 1 - i)),
                    ("sans-serif", 15),
                )
            }))
            .map_err(err)?;
        }
        Chart::Faithfulness {
            title,
            deletion,
            insertion,
        } => {
            let mut ch = ChartBuilder::on(root)
                .caption(title, ("sans-serif", 24))
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..1f64, 0f64..1f64)
                .map_err(err)?;
            ch.configure_mesh()
                .x_desc("fraction of pixels deleted / inserted, most important first")
                .y_desc("target probability")
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            for (curve, name, color) in [
                (deletion, "deletion", RGBColor(200, 60, 50)),
                (insertion, "insertion", RGBColor(40, 120, 60)),
            ] {
                let pts: Vec<(f64, f64)> = curve
                    .fractions
                    .iter()
                    .copied()
                    .zip(curve.scores.iter().copied())
                    .collect();
                ch.draw_series(LineSeries::new(pts, color.stroke_width(3)))
                    .map_err(err)?
                    .label(format!("{name} (AUC {:.3})", curve.auc))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
            }
            ch.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 16))
                .draw()
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The chart as RGB pixels (width x height x 3).
pub fn rgb(chart: &Chart, size: (u32, u32)) -> Result<Vec<u8>> {
    fonts();
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(chart, &root)?;
    }
    Ok(buf)
}

/// The chart as an SVG document.
pub fn svg(chart: &Chart) -> Result<String> {
    fonts();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
        draw(chart, &root)?;
    }
    Ok(s)
}

/// Writes the chart as PNG or SVG (by the extension of `path`), atomically.
pub fn save(chart: &Chart, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "png" => {
            let buf = rgb(chart, SIZE)?;
            let img = image::RgbImage::from_raw(SIZE.0, SIZE.1, buf).expect("buffer of the right size");
            crate::render::save_png(&img, path)?;
        }
        "svg" => {
            let s = svg(chart)?;
            crate::files::write_atomic(path, s.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        }
        _ => bail!(
            "{}: charts are written as .png or .svg; give the file one of these extensions",
            path.display()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top() -> Vec<Class> {
        vec![
            Class {
                index: 281,
                label: "tabby, tabby cat".into(),
                probability: 0.6,
                logit: 9.0,
            },
            Class {
                index: 282,
                label: "tiger cat".into(),
                probability: 0.3,
                logit: 8.3,
            },
        ]
    }

    #[test]
    fn prediction_chart_draws_bars_and_saves_svg_and_png() {
        let chart = Chart::Prediction {
            title: "chelsea.png".into(),
            top: top(),
        };
        let px = rgb(&chart, (400, 200)).unwrap();
        // The bars' blue is in the picture.
        assert!(px.chunks(3).any(|p| p == [70, 110, 200]));
        let dir = tempfile::tempdir().unwrap();
        save(&chart, &dir.path().join("p.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("p.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("tabby"), "{svg:.200}");
        save(&chart, &dir.path().join("p.png")).unwrap();
        assert_eq!(image::open(dir.path().join("p.png")).unwrap().width(), SIZE.0);
        let e = save(&chart, &dir.path().join("p.txt")).unwrap_err().to_string();
        assert!(e.contains(".png or .svg"), "{e}");
        let empty = Chart::Prediction {
            title: String::new(),
            top: vec![],
        };
        assert!(rgb(&empty, (100, 100)).is_err());
    }

    #[test]
    fn faithfulness_chart_names_both_aucs() {
        let c = |auc: f64| Curve {
            fractions: vec![0.0, 0.5, 1.0],
            scores: vec![0.9, 0.4, 0.1],
            auc,
        };
        let chart = Chart::Faithfulness {
            title: "grad-cam".into(),
            deletion: c(0.123),
            insertion: c(0.456),
        };
        let dir = tempfile::tempdir().unwrap();
        save(&chart, &dir.path().join("f.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("f.svg")).unwrap();
        assert!(svg.contains("AUC 0.123") && svg.contains("AUC 0.456"));
    }
}
