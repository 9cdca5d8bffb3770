//! What a channel wants to see, its slice of the state: the top images and the grown image.

use glassbox_engine::finetune::DataSource;

/// An image grown to maximise a channel or a class.
#[derive(Debug, Clone, Default)]
pub struct Visual {
    pub seed: i64,
    pub running: Option<u64>,
    pub progress: Option<(usize, usize)>,
    /// What it maximised, and its value at the first and the last step.
    pub result: Option<(glassbox_engine::visualize::Goal, f64, f64)>,
}

/// The top images of a channel.
#[derive(Debug, Clone)]
pub struct Examples {
    pub source: Option<DataSource>,
    pub per_class: usize,
    pub running: Option<u64>,
    pub progress: Option<(usize, usize)>,
    pub result: Option<ExamplesResult>,
}

impl Default for Examples {
    fn default() -> Self {
        Examples {
            source: None,
            per_class: 100,
            running: None,
            progress: None,
            result: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExamplesResult {
    pub layer: String,
    pub channel: usize,
    pub images: Vec<glassbox_engine::worker::ExampleImage>,
    pub searched: usize,
    pub images_per_s: Option<f64>,
}
