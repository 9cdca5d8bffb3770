//! What does this neuron want to see? (1) Dataset examples: the images of a folder or a
//! bundled data set that most activate a channel, with its activation over each. The mean
//! activation of every channel of a layer is computed for every image once, in batches, and
//! kept: another channel of the same layer is instant.

use std::time::Instant;

use image::{DynamicImage, RgbImage};
use tch::{Device, Kind, Tensor};

use super::error::{Error, Result};
use super::finetune::{self, Data, DataSource};
use super::model::Model;

/// Every image's mean activation per channel of one layer.
pub struct Activations {
    pub source: DataSource,
    pub per_class: usize,
    pub layer: String,
    /// [N, C] on the CPU.
    pub means: Tensor,
    pub data: Data,
    /// Images per second while computing them, and the plain forward's, in the same run.
    pub images_per_s: f64,
}

/// One of the top images.
pub struct Example {
    pub index: usize,
    pub name: String,
    pub activation: f64,
    /// The image with the channel's activation over it.
    pub overlay: RgbImage,
    pub view: DynamicImage,
    pub file: Option<std::path::PathBuf>,
}

/// The output of `layer` for a batch of u8 images, without gradients, from a forward that
/// ends at the layer.
fn layer_output(model: &Model, images: &Tensor, layer: &str) -> Result<Tensor> {
    let x = finetune::normalise(model, images);
    model
        .layer_output(&x, layer)
        .ok_or_else(|| super::inspect::unknown_layer(model, layer))
}

/// The mean activation of every channel of `layer` for every image of `source`, in batches
/// of 64; `progress(done, total)` false stops.
pub fn activations(
    model: &Model,
    source: &DataSource,
    per_class: usize,
    layer: &str,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Activations> {
    let data = finetune::read_data(&model.preprocess, source, per_class)?;
    let n = data.images.size()[0];
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let len = 64.min(n - i);
        let t = layer_output(model, &data.images.narrow(0, i, len), layer)?;
        if t.dim() != 4 {
            return Err(Error::invalid(format!(
                "`{layer}` has no spatial channels (shape {:?}); pick a convolution, block or activation layer",
                t.size()
            )));
        }
        out.push(
            t.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
                .to_device(Device::Cpu),
        );
        i += len;
        if !progress(i as usize, n as usize) {
            return Err(Error::Cancelled);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(Activations {
        source: source.clone(),
        per_class,
        layer: layer.to_string(),
        means: Tensor::cat(&out, 0),
        images_per_s: n as f64 / secs.max(1e-9),
        data,
    })
}

impl Activations {
    pub fn channels(&self) -> i64 {
        self.means.size()[1]
    }

    /// The `k` images that most activate `channel`, each with the channel over it.
    pub fn top(&self, model: &Model, channel: usize, k: usize) -> Result<Vec<Example>> {
        if channel as i64 >= self.channels() {
            return Err(Error::invalid(format!(
                "`{}` has {} channels; no channel {channel}",
                self.layer,
                self.channels()
            )));
        }
        let col = self.means.select(1, channel as i64);
        let k = (k as i64).min(col.size()[0]);
        let (vals, idx) = col.topk(k, 0, true, true);
        // The chosen images' channels, from one forward of all of them.
        let maps = layer_output(model, &self.data.images.index_select(0, &idx), &self.layer)?;
        let mut out = Vec::new();
        for j in 0..k {
            let i = idx.int64_value(&[j]) as usize;
            let view = finetune::picture(&self.data.images.get(i as i64))?;
            let ch = super::inspect::Channels::from_tensor(&self.layer, &maps.narrow(0, j, 1))?;
            let (_, overlay) = super::render::channel_pictures(&view, &ch, channel);
            // An image of a folder is named by its path inside the folder (`7/314.png`: a
            // folder of class sub-folders often repeats file names).
            let name = match (&self.data.files[i], &self.source) {
                (Some(p), DataSource::Folder(root)) => p.strip_prefix(root).unwrap_or(p).display().to_string(),
                (Some(p), _) => p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                (None, _) => format!(
                    "{} image {i} ({})",
                    self.data.source, self.data.classes[self.data.labels[i]]
                ),
            };
            out.push(Example {
                index: i,
                name,
                activation: vals.double_value(&[j]),
                overlay,
                view,
                file: self.data.files[i].clone(),
            });
        }
        Ok(out)
    }
}
