//! `glassbox explain --score`: which map to trust. Every method asked for (`--method all`:
//! all of them) scored on each image for one class, by deletion and insertion AUC, ROAD and
//! the sanity check's rank correlation, the best per measure marked; with one CAM method
//! and no `--layer`, that method at each candidate layer instead (which layer to look at).
//! Over several images, each method's (or layer's) mean scores follow.

use std::collections::BTreeMap;

use anyhow::Result;

use super::args::{expand_inputs, for_each_input, Shard};
use super::explain::ExplainArgs;
use glassbox_engine::explain::Method;
use glassbox_engine::model::Model;
use glassbox_engine::score::{best, Score, MEASURES};
use glassbox_engine::session::{ImageSource, Scoreboard, Session};

pub fn run(a: &ExplainArgs, m: Model) -> Result<()> {
    let methods = a.method.methods();
    // One set of parameters for all: occlusion's fill value where it is asked for.
    let params = a.method.params_for(
        &m,
        if methods.contains(&Method::Occlusion) {
            Method::Occlusion
        } else {
            methods[0]
        },
    )?;
    let layers = methods.len() == 1 && methods[0].uses_layer() && a.method.layer.is_none();
    let inputs = Shard::of(a.shard, expand_inputs(&a.images)?)?;
    let many = inputs.len() > 1 || a.images.iter().any(|p| p.is_dir());
    let mut session = Session::with_model(m);
    let mut all: Vec<Score> = Vec::new();
    let mut images = 0;
    for_each_input(&inputs, many, |path| {
        session.set_image(&ImageSource::File(path.to_path_buf()))?;
        let mut quiet = |_: usize, _: usize| true;
        let board = if layers {
            session.cam_layers(methods[0], &params, &mut quiet, &|| true)?
        } else {
            session.scoreboard(&methods, &params, &mut quiet, &|| true)?
        };
        all.extend(board.scores.iter().cloned());
        images += 1;
        let label = session
            .model()?
            .labels
            .get(board.target as usize)
            .cloned()
            .unwrap_or_default();
        if a.json {
            let row = if board.layers { "layer" } else { "method" };
            let v = serde_json::json!({
                "image": path.display().to_string(),
                "target": board.target,
                "label": label,
                "methods": board.scores,
                "failed": board.failed.iter().map(|(m, e)| serde_json::json!({row: m, "error": e})).collect::<Vec<_>>(),
                "best": best_names(&board),
            });
            Ok(serde_json::to_string(&v)?)
        } else {
            Ok(table(
                &format!("{}: class {} ({label})", path.display(), board.target),
                &board,
            ))
        }
    })?;
    if images > 1 {
        let board = means(&all, layers);
        if a.json {
            let v = serde_json::json!({"images": images, "means": board.scores, "best": best_names(&board)});
            println!("{}", serde_json::to_string(&v)?);
        } else {
            println!("{}", table(&format!("mean over {images} images"), &board));
        }
    }
    Ok(())
}

/// Per measure, the best method's (or layer's) name.
fn best_names(board: &Scoreboard) -> BTreeMap<&'static str, String> {
    MEASURES
        .iter()
        .zip(best(&board.scores))
        .filter_map(|((m, _), i)| Some((*m, board.row_name(&board.scores[i?]).to_string())))
        .collect()
}

/// Each method's (or layer's) mean scores over the images, best ROAD first.
fn means(all: &[Score], layers: bool) -> Scoreboard {
    let mut board = Scoreboard {
        target: -1,
        layers,
        scores: Vec::new(),
        failed: Vec::new(),
    };
    let mut groups: BTreeMap<String, Vec<&Score>> = BTreeMap::new();
    for s in all {
        groups.entry(board.row_name(s).to_string()).or_default().push(s);
    }
    let mut out: Vec<Score> = groups
        .into_values()
        .map(|g| {
            let mean = |f: &dyn Fn(&Score) -> f64| g.iter().map(|s| f(s)).sum::<f64>() / g.len() as f64;
            Score {
                method: g[0].method.clone(),
                layer: g[0].layer.clone(),
                target: -1,
                deletion_auc: mean(&|s| s.deletion_auc),
                insertion_auc: mean(&|s| s.insertion_auc),
                road: mean(&|s| s.road),
                sanity_spearman: mean(&|s| s.sanity_spearman),
            }
        })
        .collect();
    out.sort_by(|a, b| b.road.total_cmp(&a.road));
    board.scores = out;
    board
}

/// The board as text: one row per method (or layer), `*` beside the best of each measure.
fn table(title: &str, board: &Scoreboard) -> String {
    let bests = best(&board.scores);
    let mut out = format!(
        "{title}\n{:<24} {:>13} {:>14} {:>9} {:>11}\n",
        if board.layers { "layer" } else { "method" },
        "deletion AUC",
        "insertion AUC",
        "ROAD",
        "sanity rho"
    );
    out.push_str("  (lower, higher, higher, nearer 0 is better; * the best)\n");
    for (i, s) in board.scores.iter().enumerate() {
        let cell = |k: usize, v: f64| format!("{v:.4}{}", if bests[k] == Some(i) { "*" } else { " " });
        out.push_str(&format!(
            "{:<24} {:>13} {:>14} {:>9} {:>11}\n",
            board.row_name(s),
            cell(0, s.deletion_auc),
            cell(1, s.insertion_auc),
            cell(2, s.road),
            cell(3, s.sanity_spearman)
        ));
    }
    for (m, e) in &board.failed {
        out.push_str(&format!("{m}: not scored: {e}\n"));
    }
    if board.layers {
        if let Some(s) = board.scores.first() {
            let l = board.row_name(s);
            out.push_str(&format!("best layer by ROAD: {l} (--layer {l})\n"));
        }
    }
    out.trim_end().to_string()
}
