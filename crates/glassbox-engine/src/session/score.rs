//! The scoreboard: which map to trust on the current image, and which layer a CAM should
//! look at (see `score.rs` for the measures).

use super::types::Scoreboard;
use super::Session;
use crate::error::{Error, Result};
use crate::explain::{Method, Params};
use crate::score::{self, Scorer};

impl Session {
    /// Every method of `methods` scored on the current image for one class (`params`'
    /// target, else the top class), the best by ROAD first. A method that fails is listed
    /// with its reason; cancelling (`progress` or `keep_going` returning false) stops the
    /// whole board.
    pub fn scoreboard(
        &self,
        methods: &[Method],
        params: &Params,
        progress: &mut dyn FnMut(usize, usize) -> bool,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Scoreboard> {
        let rows = methods
            .iter()
            .map(|&m| (m.name().to_string(), m, params.clone()))
            .collect();
        self.board(rows, false, params, progress, keep_going)
    }

    /// A CAM method scored at each candidate layer ([`score::cam_candidates`]), the best by
    /// ROAD first: the layer to look at. A layer that cannot be scored is listed with its
    /// reason.
    pub fn cam_layers(
        &self,
        method: Method,
        params: &Params,
        progress: &mut dyn FnMut(usize, usize) -> bool,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Scoreboard> {
        if !method.uses_layer() {
            return Err(Error::invalid(format!(
                "{method} looks at no layer: only the CAM methods do"
            )));
        }
        let (m, _) = self.need_input()?;
        let rows = score::cam_candidates(m)
            .into_iter()
            .map(|l| {
                let p = Params {
                    layer: Some(l.clone()),
                    ..params.clone()
                };
                (l, method, p)
            })
            .collect();
        self.board(rows, true, params, progress, keep_going)
    }

    /// Scores each row (its name, method and parameters) on the current image, the best by
    /// ROAD first; a row that fails is listed by name with its reason.
    fn board(
        &self,
        rows: Vec<(String, Method, Params)>,
        layers: bool,
        params: &Params,
        progress: &mut dyn FnMut(usize, usize) -> bool,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Scoreboard> {
        let (m, x) = self.need_input()?;
        let scorer = Scorer::new(m, x, params.target, params.seed)?;
        let mut board = Scoreboard {
            target: scorer.target(),
            layers,
            scores: Vec::new(),
            failed: Vec::new(),
        };
        for (i, (name, method, p)) in rows.iter().enumerate() {
            if !progress(i, rows.len()) {
                return Err(Error::Cancelled);
            }
            match scorer.score(*method, p, keep_going) {
                Ok(s) => board.scores.push(s),
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => board.failed.push((name.clone(), e.to_string())),
            }
        }
        progress(rows.len(), rows.len());
        board.scores.sort_by(|a, b| b.road.total_cmp(&a.road));
        Ok(board)
    }
}
