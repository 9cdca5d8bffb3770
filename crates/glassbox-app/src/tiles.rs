//! The window's tiles: every view is a pane the user can move, resize, maximise and close
//! (egui_tiles), in four ready layouts for the uses of the app: See why, Edit, Retrain and
//! Teach. Each layout remembers how the user arranged it; a stored arrangement is checked
//! before it is used (a broken or hostile one gives the ready layout back).

use egui_tiles::{Container, Tile, TileId, Tiles, Tree};
use serde::{Deserialize, Serialize};

/// One view of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pane {
    Input,
    Draw,
    Prediction,
    Explanations,
    Activations,
    /// The chosen channel, its kernel and the kernel editor.
    Channel,
    /// A value of the channel computed in the open.
    Unfold,
    /// What the chosen channel wants to see.
    Neuron,
    Layers,
    Filters,
    Model,
    /// The edit list and what the edits broke.
    Edits,
    /// Retraining: the data and the settings, the run's controls.
    TrainSetup,
    /// Retraining: the loss and accuracy curves.
    TrainCurves,
    /// Retraining: the candidate's timeline and confusion matrix.
    TrainResult,
    /// Model A (pinned) beside the current model.
    Compare,
}

impl Pane {
    pub const ALL: [Pane; 16] = [
        Pane::Input,
        Pane::Draw,
        Pane::Prediction,
        Pane::Explanations,
        Pane::Activations,
        Pane::Channel,
        Pane::Unfold,
        Pane::Neuron,
        Pane::Layers,
        Pane::Filters,
        Pane::Model,
        Pane::Edits,
        Pane::TrainSetup,
        Pane::TrainCurves,
        Pane::TrainResult,
        Pane::Compare,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Input => "Input",
            Pane::Draw => "Draw a digit",
            Pane::Prediction => "Prediction",
            Pane::Explanations => "Explanations",
            Pane::Activations => "Activations",
            Pane::Channel => "Channel",
            Pane::Unfold => "Open up a convolution",
            Pane::Neuron => "What it wants to see",
            Pane::Layers => "Layers",
            Pane::Filters => "Filters",
            Pane::Model => "Model",
            Pane::Edits => "Edits",
            Pane::TrainSetup => "Data and settings",
            Pane::TrainCurves => "Curves",
            Pane::TrainResult => "Timeline and confusion",
            Pane::Compare => "Compare A and B",
        }
    }
}

/// The four ready layouts, one per use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Layout {
    /// Input, prediction, the explanations large, the layers.
    #[default]
    SeeWhy,
    /// The channel with its kernel editor wide, the edit list, the prediction with ghost
    /// bars, what the edits broke.
    Edit,
    /// Data and settings, curves, timeline, confusion matrix.
    Retrain,
    /// Draw a digit, open up a convolution, what a neuron wants to see.
    Teach,
}

impl Layout {
    pub const ALL: [Layout; 4] = [Layout::SeeWhy, Layout::Edit, Layout::Retrain, Layout::Teach];

    pub fn name(self) -> &'static str {
        match self {
            Layout::SeeWhy => "See why",
            Layout::Edit => "Edit",
            Layout::Retrain => "Retrain",
            Layout::Teach => "Teach",
        }
    }

    pub fn index(self) -> usize {
        Layout::ALL
            .iter()
            .position(|l| *l == self)
            .expect("every layout is listed")
    }

    /// The layout as it comes, before the user moves anything.
    pub fn ready(self) -> Tree<Pane> {
        let mut t = Tiles::default();
        let pane = |t: &mut Tiles<Pane>, p: Pane| t.insert_pane(p);
        let root = match self {
            Layout::SeeWhy => {
                let input = pane(&mut t, Pane::Input);
                let draw = pane(&mut t, Pane::Draw);
                let inputs = t.insert_tab_tile(vec![input, draw]);
                let prediction = pane(&mut t, Pane::Prediction);
                let left = vertical(&mut t, &[(inputs, 1.0), (prediction, 1.2)]);
                let explanations = pane(&mut t, Pane::Explanations);
                let activations = pane(&mut t, Pane::Activations);
                let middle = vertical(&mut t, &[(explanations, 2.0), (activations, 1.0)]);
                let side: Vec<TileId> = [Pane::Layers, Pane::Channel, Pane::Filters, Pane::Model]
                    .into_iter()
                    .map(|p| pane(&mut t, p))
                    .collect();
                let right = t.insert_tab_tile(side);
                horizontal(&mut t, &[(left, 0.9), (middle, 2.2), (right, 1.0)])
            }
            Layout::Edit => {
                let prediction = pane(&mut t, Pane::Prediction);
                let edits = pane(&mut t, Pane::Edits);
                let compare = pane(&mut t, Pane::Compare);
                let lower = t.insert_tab_tile(vec![edits, compare]);
                let left = vertical(&mut t, &[(prediction, 1.0), (lower, 1.0)]);
                let channel = pane(&mut t, Pane::Channel);
                let activations = pane(&mut t, Pane::Activations);
                let layers = pane(&mut t, Pane::Layers);
                let filters = pane(&mut t, Pane::Filters);
                let lower = t.insert_tab_tile(vec![layers, filters]);
                let right = vertical(&mut t, &[(activations, 1.0), (lower, 1.0)]);
                horizontal(&mut t, &[(left, 1.0), (channel, 1.8), (right, 1.0)])
            }
            Layout::Retrain => {
                let setup = pane(&mut t, Pane::TrainSetup);
                let input = pane(&mut t, Pane::Input);
                let left = vertical(&mut t, &[(setup, 2.2), (input, 1.0)]);
                let curves = pane(&mut t, Pane::TrainCurves);
                let result = pane(&mut t, Pane::TrainResult);
                let compare = pane(&mut t, Pane::Compare);
                let lower = t.insert_tab_tile(vec![result, compare]);
                let right = vertical(&mut t, &[(curves, 0.7), (lower, 1.6)]);
                horizontal(&mut t, &[(left, 1.0), (right, 1.8)])
            }
            Layout::Teach => {
                let draw = pane(&mut t, Pane::Draw);
                let input = pane(&mut t, Pane::Input);
                let inputs = t.insert_tab_tile(vec![draw, input]);
                let prediction = pane(&mut t, Pane::Prediction);
                let left = vertical(&mut t, &[(inputs, 1.2), (prediction, 1.0)]);
                let unfold = pane(&mut t, Pane::Unfold);
                let neuron = pane(&mut t, Pane::Neuron);
                let middle = vertical(&mut t, &[(unfold, 1.0), (neuron, 1.0)]);
                let activations = pane(&mut t, Pane::Activations);
                let channel = pane(&mut t, Pane::Channel);
                let right = vertical(&mut t, &[(activations, 1.0), (channel, 1.0)]);
                horizontal(&mut t, &[(left, 1.0), (middle, 1.5), (right, 1.1)])
            }
        };
        Tree::new(tree_id(self.index()), root, t)
    }
}

/// The egui id of layout `k`'s tree.
fn tree_id(k: usize) -> egui::Id {
    egui::Id::unique(("glassbox-layout", k))
}

fn linear(t: &mut Tiles<Pane>, dir: egui_tiles::LinearDir, children: &[(TileId, f32)]) -> TileId {
    let mut l = egui_tiles::Linear::new(dir, children.iter().map(|c| c.0).collect());
    for (id, share) in children {
        l.shares.set_share(*id, *share);
    }
    t.insert_container(l)
}

fn horizontal(t: &mut Tiles<Pane>, children: &[(TileId, f32)]) -> TileId {
    linear(t, egui_tiles::LinearDir::Horizontal, children)
}

fn vertical(t: &mut Tiles<Pane>, children: &[(TileId, f32)]) -> TileId {
    linear(t, egui_tiles::LinearDir::Vertical, children)
}

/// The layouts and which one is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layouts {
    pub current: Layout,
    trees: Vec<Tree<Pane>>,
    /// A pane shown alone over its layout (not remembered).
    #[serde(skip)]
    pub maximised: Option<Pane>,
}

impl Default for Layouts {
    fn default() -> Self {
        Layouts {
            current: Layout::default(),
            trees: Layout::ALL.iter().map(|l| l.ready()).collect(),
            maximised: None,
        }
    }
}

/// The storage key of the layouts (eframe storage, beside the settings).
pub const STORAGE_KEY: &str = "glassbox-layouts";
/// A stored layout with more tiles than this is refused: the ready ones have about 15.
const MAX_TILES: usize = 64;
/// A stored text longer than this is refused before it is parsed.
const MAX_STORED: usize = 256 << 10;

impl Layouts {
    /// The tree of the layout shown.
    pub fn tree_mut(&mut self) -> &mut Tree<Pane> {
        let i = self.current.index();
        &mut self.trees[i]
    }

    pub fn tree(&self, layout: Layout) -> &Tree<Pane> {
        &self.trees[layout.index()]
    }

    /// Brings `pane` to the front: its tab in the layout shown; a layout without it gives
    /// way to the first one that has it (a view closed everywhere comes back with its
    /// layout as it came).
    pub fn show(&mut self, pane: Pane) {
        let has = |t: &Tree<Pane>| t.tiles.find_pane(&pane).is_some();
        if !has(self.tree(self.current)) {
            match Layout::ALL.into_iter().find(|l| has(self.tree(*l))) {
                Some(l) => self.current = l,
                None => {
                    let l = Layout::ALL
                        .into_iter()
                        .find(|l| has(&l.ready()))
                        .expect("every view is in a ready layout");
                    self.current = l;
                    self.reset_current();
                }
            }
        }
        self.maximised = None;
        self.tree_mut()
            .make_active(|_, t| matches!(t, Tile::Pane(p) if *p == pane));
    }

    /// The layout shown, back as it came.
    pub fn reset_current(&mut self) {
        *self.tree_mut() = self.current.ready();
    }

    pub fn to_stored(&self) -> String {
        ron::to_string(self).unwrap_or_default()
    }

    /// What the last session stored, checked: each layout whose tree is broken (a missing
    /// or shared child, a tile out of reach, a share that is not a positive number, too
    /// many tiles) comes back as it was made. Errors say what was wrong.
    pub fn from_stored(text: &str) -> (Layouts, Option<String>) {
        if text.len() > MAX_STORED {
            return (Layouts::default(), Some("the remembered layouts are too large".into()));
        }
        let mut l: Layouts = match ron::from_str(text) {
            Ok(l) => l,
            Err(e) => {
                return (
                    Layouts::default(),
                    Some(format!("the remembered layouts are broken ({e})")),
                )
            }
        };
        let mut broken = Vec::new();
        l.trees
            .resize_with(Layout::ALL.len(), || Tree::empty(egui::Id::unique("unused")));
        l.trees.truncate(Layout::ALL.len());
        for (k, layout) in Layout::ALL.iter().enumerate() {
            if let Err(e) = check(&l.trees[k]) {
                broken.push(format!("{} ({e})", layout.name()));
                l.trees[k] = layout.ready();
            } else {
                // The tree's id is the app's own, whatever the file said.
                let tree = std::mem::replace(&mut l.trees[k], Tree::empty(egui::Id::unique("unused")));
                let root = tree.root().expect("checked");
                l.trees[k] = Tree::new(tree_id(k), root, tree.tiles);
            }
        }
        let error = (!broken.is_empty()).then(|| {
            format!(
                "the remembered arrangement of {} was broken; it is back as it came",
                broken.join(", ")
            )
        });
        (l, error)
    }
}

/// Whether a tree can be shown: a root, every tile reached once from it, every child
/// there, every share a positive number, at most [`MAX_TILES`] tiles.
fn check(tree: &Tree<Pane>) -> Result<(), String> {
    let tiles = &tree.tiles;
    if tiles.len() > MAX_TILES {
        return Err(format!("{} tiles, at most {MAX_TILES}", tiles.len()));
    }
    let root = tree.root().ok_or("no root")?;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            return Err("a tile in two places".into());
        }
        match tiles.get(id).ok_or("a missing tile")? {
            Tile::Pane(_) => {}
            Tile::Container(c) => {
                if let Container::Linear(l) = c {
                    if l.shares.iter().any(|(_, s)| !s.is_finite() || *s <= 0.0) {
                        return Err("a share that is not a positive number".into());
                    }
                }
                if let Container::Tabs(t) = c {
                    if t.active.is_some_and(|a| !t.children.contains(&a)) {
                        return Err("an active tab that is not one of its tabs".into());
                    }
                }
                stack.extend(c.children().copied());
            }
        }
    }
    if seen.len() != tiles.len() {
        return Err("tiles out of reach".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The panes of a tree, in a fixed order (the tiles are a hash map).
    fn panes(tree: &Tree<Pane>) -> Vec<Pane> {
        let mut v: Vec<Pane> = tree
            .tiles
            .tiles()
            .filter_map(|t| match t {
                Tile::Pane(p) => Some(*p),
                _ => None,
            })
            .collect();
        v.sort_by_key(|p| Pane::ALL.iter().position(|q| q == p));
        v
    }

    #[test]
    fn every_ready_layout_is_valid_and_has_what_its_use_needs() {
        for l in Layout::ALL {
            check(&l.ready()).unwrap_or_else(|e| panic!("{}: {e}", l.name()));
        }
        let has = |l: Layout, p: &[Pane]| p.iter().all(|p| panes(&l.ready()).contains(p));
        assert!(has(
            Layout::SeeWhy,
            &[Pane::Input, Pane::Prediction, Pane::Explanations, Pane::Layers]
        ));
        assert!(has(Layout::Edit, &[Pane::Channel, Pane::Edits, Pane::Prediction]));
        assert!(has(
            Layout::Retrain,
            &[Pane::TrainSetup, Pane::TrainCurves, Pane::TrainResult]
        ));
        assert!(has(Layout::Teach, &[Pane::Draw, Pane::Unfold, Pane::Neuron]));
        // Every view is in some layout.
        for p in Pane::ALL {
            assert!(Layout::ALL.iter().any(|l| has(*l, &[p])), "{p:?} is in no layout");
        }
    }

    #[test]
    fn showing_a_view_brings_its_tab_forward_or_its_layout() {
        let mut l = Layouts::default();
        let active = |l: &Layouts, p: Pane| {
            let t = l.tree(l.current);
            t.active_tiles().iter().any(|id| t.tiles.get_pane(id) == Some(&p))
        };
        assert!(!active(&l, Pane::Channel));
        l.show(Pane::Channel);
        assert_eq!(l.current, Layout::SeeWhy);
        assert!(active(&l, Pane::Channel));
        l.show(Pane::TrainCurves);
        assert_eq!(l.current, Layout::Retrain);
        // Closed in every layout: a layout that had it comes back as it came.
        for k in 0..Layout::ALL.len() {
            let t = &mut l.trees[k];
            if let Some(id) = t.tiles.find_pane(&Pane::Unfold) {
                t.remove_recursively(id);
            }
        }
        l.show(Pane::Unfold);
        assert_eq!(l.current, Layout::Teach);
        assert!(active(&l, Pane::Unfold));
    }

    #[test]
    fn stored_layouts_round_trip_and_broken_ones_come_back_ready() {
        let l = Layouts {
            current: Layout::Teach,
            ..Default::default()
        };
        let text = l.to_stored();
        let (back, err) = Layouts::from_stored(&text);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(back.current, Layout::Teach);
        assert_eq!(panes(back.tree(Layout::Edit)), panes(l.tree(Layout::Edit)));

        // A tree whose root names a tile that is not there.
        let mut broken = Layouts::default();
        let t = &mut broken.trees[1];
        let root = t.root().unwrap();
        t.tiles.remove(root);
        let (back, err) = Layouts::from_stored(&broken.to_stored());
        assert!(err.unwrap().contains("Edit"));
        check(back.tree(Layout::Edit)).unwrap();

        // Not RON at all, or far too long: the ready layouts and a message.
        assert!(Layouts::from_stored("(current: Nope").1.is_some());
        assert!(Layouts::from_stored(&"x".repeat(MAX_STORED + 1)).1.is_some());
    }
}
