//! The window's panels, one file each. A panel draws from the state (and textures) and
//! emits commands; it changes nothing itself. `crate::layout` places them; what they
//! share is `crate::widgets`.

pub(crate) mod activations;
pub(crate) mod channel;
pub(crate) mod compare;
pub(crate) mod draw;
pub(crate) mod edits;
pub(crate) mod errors;
pub(crate) mod explain_this;
pub(crate) mod explanations;
pub(crate) mod filters;
pub(crate) mod help;
pub(crate) mod input;
pub(crate) mod layers;
pub(crate) mod lesson;
pub(crate) mod model;
pub mod prediction;
pub(crate) mod scoreboard;
pub(crate) mod status;
pub(crate) mod toolbar;
pub(crate) mod train;
pub(crate) mod unfold;
pub(crate) mod unsaved;
pub(crate) mod wants;
