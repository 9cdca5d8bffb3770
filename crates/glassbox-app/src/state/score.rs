//! The scoreboard on the current image: which map to trust (every method scored), or which
//! layer a CAM should look at.

use glassbox_engine::session::Scoreboard;

#[derive(Default)]
pub struct Scores {
    /// The request in flight, if any.
    pub running: Option<u64>,
    /// Methods (or layers) done of all.
    pub progress: Option<(usize, usize)>,
    /// The last board.
    pub board: Option<Scoreboard>,
    pub error: Option<String>,
}
