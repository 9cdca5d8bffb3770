//! What the engine thread holds between requests, and the checks handlers share.

use image::{DynamicImage, RgbaImage};
use tch::{Device, Tensor};

use super::protocol::{Explained, ImageSource, ModelInfo};
use crate::error::{Error, Result};
use crate::explain;
use crate::inspect;
use crate::map::attribution_map;
use crate::model::Model;

/// The engine's state: the model, the image, and the image prepared for the model. A
/// request changes it only once it has succeeded.
pub(super) struct State {
    pub device: Device,
    pub model: Option<Model>,
    pub image: Option<DynamicImage>,
    /// The current image prepared for the current model.
    pub input: Option<Tensor>,
    /// The edits made to the model by hand (undoable); a new model starts with none.
    pub editor: crate::edit::Editor,
    /// The unedited model's logits for the current image (computed once while edits are in
    /// force; a new image or model forgets them).
    pub original_logits: Option<Tensor>,
    /// The unedited model's channels of one layer for the current image, kept likewise.
    pub original_channels: Option<crate::inspect::Channels>,
    /// After a training run: the model it started from (the candidate is `model`), until
    /// the candidate is accepted or discarded.
    pub training: Option<Session>,
    /// A layer's activations over a folder or data set, kept for the top images of its
    /// channels (forgotten when the model changes).
    pub examples: Option<crate::examples::Activations>,
}

/// A finished run whose candidate is shown: what it started from, its timeline and its
/// validation images.
pub(super) struct Session {
    pub base: Model,
    pub base_editor: crate::edit::Editor,
    pub timeline: crate::finetune::Timeline,
    pub val: crate::finetune::ValSet,
}

impl State {
    pub(super) fn new(device: Device) -> State {
        State {
            device,
            model: None,
            image: None,
            input: None,
            editor: Default::default(),
            original_logits: None,
            original_channels: None,
            training: None,
            examples: None,
        }
    }

    /// The model and the prepared image, or what the user has to do first.
    pub(super) fn need_input(&self) -> Result<(&Model, &Tensor)> {
        match (&self.model, &self.input) {
            (Some(m), Some(x)) => Ok((m, x)),
            (None, _) => Err(Error::invalid(
                "no model is open: open a weights file or pick the builtin model",
            )),
            (_, None) => Err(Error::invalid(
                "no image yet: drop an image on the window, open one or paste one",
            )),
        }
    }

    /// The model, or what the user has to do first.
    pub(super) fn need_model(&self) -> Result<&Model> {
        self.model
            .as_ref()
            .ok_or_else(|| Error::invalid("no model is open: open a weights file or pick the builtin model"))
    }
}

pub(super) fn model_info(m: &Model) -> ModelInfo {
    let p = &m.preprocess;
    ModelInfo {
        source: m.source.clone(),
        arch: m.spec.arch.to_string(),
        classes: m.spec.classes,
        parameters: m.parameter_count(),
        layers: m.layers(),
        convs: inspect::conv_layers(m),
        producers: m
            .layers()
            .iter()
            .filter_map(|l| inspect::producing_conv(m, &l.name).map(|c| (l.name.clone(), c)))
            .collect(),
        labels: m.labels.clone(),
        device: crate::Device::from(m.device()).to_string(),
        input: format!("{}x{}x{}", p.channels(), p.size, p.size),
        saved_edits: crate::edit::saved_log(m),
        training: crate::finetune::record_of(m),
    }
}

pub(super) fn decode(source: &ImageSource) -> Result<DynamicImage> {
    match source {
        ImageSource::File(path) => crate::preprocess::load_image(path),
        ImageSource::Bytes { name, bytes } => crate::preprocess::decode(bytes, std::path::Path::new(name)),
        ImageSource::Pixels {
            name,
            width,
            height,
            rgba,
        } => {
            crate::preprocess::check_image_size(*width, *height, rgba.len() as u64, std::path::Path::new(name))?;
            RgbaImage::from_raw(*width, *height, rgba.clone())
                .map(DynamicImage::ImageRgba8)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "{name}: {width}x{height} pixels need {} bytes, got {}",
                        *width as usize * *height as usize * 4,
                        rgba.len()
                    ))
                })
        }
    }
}

pub(super) fn explained(e: &explain::Explanation, size: i64) -> Result<Explained> {
    Ok(Explained {
        method: e.method,
        target: e.target,
        layer: e.layer.clone(),
        map: attribution_map(&e.attribution, e.method, size, size)?,
        completeness_error: e.completeness_error,
    })
}
