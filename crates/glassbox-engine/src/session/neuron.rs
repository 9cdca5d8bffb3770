//! What one channel responds to: the images of a data set that excite it most, the image
//! grown to excite it, and one of its values computed in the open.

use super::{ExampleImage, Examples, ImageSource, Session};
use crate::convolution::{self, Unfolded};
use crate::error::Result;
use crate::finetune::DataSource;
use crate::visualize::{self, Goal, Settings, Visual};

impl Session {
    /// The images of a folder or data set that most activate channel `channel` of `layer`
    /// (the layer's activations are computed once per model, data and layer, then kept).
    pub fn examples(
        &mut self,
        source: &DataSource,
        per_class: usize,
        layer: &str,
        channel: usize,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Examples> {
        let m = self
            .model
            .as_ref()
            .ok_or_else(|| crate::Error::invalid(super::NO_MODEL))?;
        let kept = self
            .examples
            .as_ref()
            .is_some_and(|a| &a.source == source && a.per_class == per_class && a.layer == layer);
        let mut images_per_s = None;
        if !kept {
            let a = crate::examples::activations(m, source, per_class, layer, progress)?;
            images_per_s = Some(a.images_per_s);
            self.examples = Some(a);
        }
        let a = self.examples.as_ref().expect("just computed");
        let images = a
            .top(m, channel, crate::defaults::EXAMPLES)?
            .into_iter()
            .map(|e| ExampleImage {
                source: ImageSource::of(e.file.as_deref(), &e.name, &e.view),
                name: e.name,
                activation: e.activation,
                overlay: e.overlay,
            })
            .collect();
        Ok(Examples {
            images,
            searched: a.data.labels.len(),
            images_per_s,
        })
    }

    /// An image grown from noise to maximise a channel or a class.
    pub fn visualize(
        &self,
        goal: &Goal,
        settings: &Settings,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Visual> {
        visualize::visualize(self.model()?, goal, settings, progress)
    }

    /// One value of a layer computed in the open: patch, kernel, products, sum, bias, batch
    /// norm, activation.
    pub fn unfold(&self, layer: &str, channel: usize, y: usize, x: usize) -> Result<Unfolded> {
        let (m, input) = self.need_input()?;
        convolution::unfold(m, input, layer, channel, y, x)
    }
}
