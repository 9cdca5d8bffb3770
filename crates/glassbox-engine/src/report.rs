//! A report to take home: one self-contained HTML file (every picture embedded as a data
//! URI, the chart as inline SVG, no script, nothing fetched) with the input, the top-k
//! chart, the maps, the activations, the edits and their effect, the training record and a
//! model card. `glassbox report` and the app's Export menu build the same page from plain
//! data (no torch here).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use image::RgbImage;

use crate::charts::{self, Chart};
use crate::model::Class;

/// One image's views.
pub struct ReportImage {
    pub name: String,
    /// The input as the model sees it.
    pub input: RgbImage,
    pub top: Vec<Class>,
    /// With edits in force: the same classes in the model before the edits.
    pub original_top: Option<Vec<Class>>,
    /// (method, what it explains, the map over the input).
    pub maps: Vec<(String, String, RgbImage)>,
    /// (layer, its channels as a grid).
    pub activations: Option<(String, RgbImage)>,
}

/// What the model is and where it comes from.
#[derive(Default)]
pub struct ModelCard {
    pub source: String,
    pub arch: String,
    pub classes: i64,
    pub parameters: i64,
    pub input: String,
    pub labels: Vec<String>,
    /// Edits made by hand, oldest first (saved in the file, then this session's).
    pub edits: Vec<String>,
    pub knockouts: Vec<String>,
    /// The training record (`glassbox.train.*` metadata), keys without the prefix.
    pub training: BTreeMap<String, String>,
}

pub struct Report {
    pub title: String,
    pub images: Vec<ReportImage>,
    pub model: ModelCard,
    /// With a model pinned as A in the app: A against the model now (B).
    pub comparison: Option<crate::session::Compared>,
}

/// The rows of the weight table in the report.
const WEIGHT_ROWS: usize = 20;

/// The comparison section: both answers with the change, both maps and B - A, the weights
/// that changed most.
fn comparison(h: &mut String, c: &crate::session::Compared) -> Result<()> {
    let _ = writeln!(
        h,
        "<h2>A against B</h2><p>A: {}<br>B: {} (the model now)</p>",
        esc(&c.a),
        esc(&c.b)
    );
    let pct = |p: Option<f64>| p.map_or("-".into(), |p| format!("{:.1} %", p * 100.0));
    if let Some(img) = &c.image {
        h.push_str("<table><tr><th>class</th><th>A</th><th>B</th><th>change (points)</th></tr>");
        for ch in &img.changes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&ch.label),
                pct(ch.a),
                pct(ch.b),
                ch.change.map_or("-".into(), |d| format!("{:+.1}", d * 100.0))
            );
        }
        h.push_str("</table>\n");
        if let Some(pics) = &c.pictures {
            h.push_str("<div class=\"row\">");
            for (pic, caption) in pics.iter().zip(["A", "B", "B - A (red: B looks more, blue: less)"]) {
                let _ = write!(
                    h,
                    "<figure>{}<figcaption>{}</figcaption></figure>",
                    img_tag(pic, caption, 224)?,
                    esc(caption)
                );
            }
            h.push_str("</div>");
        }
        let _ = writeln!(
            h,
            "<p>{} of <b>{}</b>: 1 - Pearson {:.3}, rank correlation {:.3} (0 and 1: the same map up to scale).</p>",
            esc(&img.method),
            esc(&img.target),
            img.one_minus_pearson,
            img.spearman
        );
    }
    let w = &c.weights;
    let _ = write!(
        h,
        "<p>Weights: {} tensor(s) changed, {} the same, {} shared class(es).</p>",
        w.changed.len(),
        w.unchanged,
        w.shared_classes
    );
    for (what, list) in [
        ("Classes only in A", &w.classes_only_a),
        ("Classes only in B", &w.classes_only_b),
    ] {
        if !list.is_empty() {
            let _ = write!(h, "<p>{what}: {}</p>", esc(&list.join(", ")));
        }
    }
    if !w.changed.is_empty() {
        h.push_str("<table><tr><th>tensor (largest change first)</th><th>relative L2</th><th>values changed</th></tr>");
        for t in w.changed.iter().take(WEIGHT_ROWS) {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{} of {}</td></tr>",
                esc(&t.name),
                t.relative_l2.map_or("new".into(), |v| format!("{v:.4}")),
                t.values,
                t.of
            );
        }
        h.push_str("</table>\n");
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn png_uri(img: &RgbImage) -> Result<String> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .context("encoding a picture")?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn img_tag(img: &RgbImage, alt: &str, width: u32) -> Result<String> {
    Ok(format!(
        r#"<img src="{}" alt="{}" width="{width}" style="image-rendering:{}">"#,
        png_uri(img)?,
        esc(alt),
        if img.width() < 64 { "pixelated" } else { "auto" }
    ))
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0}figcaption{font-size:.9em;color:#555;max-width:300px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
.chart svg{width:560px;height:auto}.small{font-size:.85em;color:#666}";

/// The page.
pub fn html(r: &Report) -> Result<String> {
    let mut h = String::new();
    let m = &r.model;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<p class=\"small\">Made by Glassbox {} with {} ({}).</p>\n",
        esc(&r.title),
        esc(&r.title),
        env!("CARGO_PKG_VERSION"),
        esc(&m.source),
        esc(&m.arch)
    );
    for img in &r.images {
        let _ = write!(h, "<h2>{}</h2>\n<div class=\"row\">", esc(&img.name));
        let _ = write!(
            h,
            "<figure>{}<figcaption>The input as the model sees it</figcaption></figure>",
            img_tag(&img.input, "input", 224)?
        );
        let chart = charts::svg(&Chart::Prediction {
            title: format!("top {} classes", img.top.len()),
            top: img.top.clone(),
        })?;
        // The SVG's own XML header is not allowed inside HTML.
        let chart = chart.find("<svg").map_or(chart.as_str(), |i| &chart[i..]);
        let _ = writeln!(
            h,
            "<figure class=\"chart\">{chart}<figcaption>What the model says: probability of each class</figcaption></figure></div>"
        );
        h.push_str("<table><tr><th>class</th><th>probability</th><th>logit</th>");
        if img.original_top.is_some() {
            h.push_str("<th>before the edits</th>");
        }
        h.push_str("</tr>");
        for c in &img.top {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.1} %</td><td>{:.2}</td>",
                esc(&c.label),
                c.probability * 100.0,
                c.logit
            );
            if let Some(o) = &img.original_top {
                let before = o.iter().find(|x| x.index == c.index).map(|x| x.probability);
                let _ = write!(
                    h,
                    "<td>{}</td>",
                    before.map_or("-".into(), |p| format!("{:.1} %", p * 100.0))
                );
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>\n");
        if !img.maps.is_empty() {
            h.push_str("<h3>Why: where the evidence is</h3><div class=\"row\">");
            for (method, what, pic) in &img.maps {
                let _ = write!(
                    h,
                    "<figure>{}<figcaption>{} of {}</figcaption></figure>",
                    img_tag(pic, method, 224)?,
                    esc(method),
                    esc(what)
                );
            }
            h.push_str("</div>\n");
        }
        if let Some((layer, grid)) = &img.activations {
            let _ = writeln!(
                h,
                "<h3>Inside: the channels of <code>{}</code></h3><figure>{}<figcaption>Every channel of the layer, strongest first</figcaption></figure>",
                esc(layer),
                img_tag(grid, layer, grid.width().min(900))?
            );
        }
    }
    if let Some(c) = &r.comparison {
        comparison(&mut h, c)?;
    }
    if !m.edits.is_empty() || !m.knockouts.is_empty() {
        h.push_str("<h2>Edits made by hand</h2><ol>");
        for e in &m.edits {
            let _ = write!(h, "<li><code>{}</code></li>", esc(e));
        }
        h.push_str("</ol>");
        if !m.knockouts.is_empty() {
            let _ = write!(h, "<p>Knocked-out channels: {}</p>", esc(&m.knockouts.join(", ")));
        }
        h.push_str("<p class=\"small\">Their effect on each image: the probabilities beside those before the edits, above.</p>\n");
    }
    if !m.training.is_empty() {
        h.push_str("<h2>Training record</h2><table>");
        for (k, v) in m.training.iter().filter(|(k, _)| k.as_str() != "per_class") {
            let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Model card</h2><table>");
    for (k, v) in [
        ("model", m.source.clone()),
        ("architecture", m.arch.clone()),
        ("classes", m.classes.to_string()),
        ("parameters", m.parameters.to_string()),
        ("input", m.input.clone()),
        (
            "data",
            m.training
                .get("data")
                .cloned()
                .unwrap_or_else(|| "not recorded in the weights file".into()),
        ),
    ] {
        let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    h.push_str("</table>");
    if let Some(pc) = m
        .training
        .get("per_class")
        .and_then(|j| serde_json::from_str::<Vec<(String, f64)>>(j).ok())
    {
        h.push_str("<h3>Accuracy per class (validation images)</h3><table><tr><th>class</th><th>accuracy</th></tr>");
        for (label, acc) in pc {
            let _ = write!(h, "<tr><td>{}</td><td>{:.1} %</td></tr>", esc(&label), acc * 100.0);
        }
        h.push_str("</table>");
    } else {
        h.push_str("<p class=\"small\">No per-class accuracy is known for this model (it is recorded when Glassbox trains it).</p>");
    }
    let shown: Vec<String> = m.labels.iter().take(20).map(|l| esc(l)).collect();
    let _ = write!(
        h,
        "<p class=\"small\">Classes: {}{}</p>\n</body></html>\n",
        shown.join(", "),
        if m.labels.len() > 20 {
            format!(" and {} more", m.labels.len() - 20)
        } else {
            String::new()
        }
    );
    Ok(h)
}

/// Writes the page atomically.
pub fn save(r: &Report, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext != "html" && ext != "htm" {
        anyhow::bail!("{}: a report is written as .html", path.display());
    }
    crate::files::write_atomic(path, html(r)?.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_escapes_text() {
        let r = Report {
            title: "a <lesson>".into(),
            comparison: None,
            images: vec![ReportImage {
                name: "cat & dog.png".into(),
                input: RgbImage::new(8, 8),
                top: vec![Class {
                    index: 0,
                    label: "tabby <cat>".into(),
                    probability: 0.5,
                    logit: 1.0,
                }],
                original_top: None,
                maps: vec![("grad-cam".into(), "tabby".into(), RgbImage::new(8, 8))],
                activations: None,
            }],
            model: ModelCard {
                source: "m".into(),
                ..Default::default()
            },
        };
        let h = html(&r).unwrap();
        assert!(h.contains("a &lt;lesson&gt;") && h.contains("cat &amp; dog.png") && h.contains("tabby &lt;cat&gt;"));
        assert!(!h.contains("<lesson>"));
        assert_eq!(h.matches("data:image/png;base64,").count(), 2);
        for bad in ["src=\"http", "href=", "<script", "src=\"/", "src=\"file:"] {
            assert!(!h.contains(bad), "{bad}");
        }
        assert!(h.contains("<svg"));
    }
}
