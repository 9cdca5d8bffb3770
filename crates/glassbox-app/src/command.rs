//! Everything a user can ask of the app, as data. Panels, shortcuts, dropped files and
//! tests emit commands; the feature each belongs to applies it (`features/`).

use std::path::PathBuf;

use glassbox_engine::arch::Arch;
use glassbox_engine::explain::{Method, Params};
use glassbox_engine::model::ModelSource;
use glassbox_engine::worker::{EditRequest, Fault, ImageSource};

use super::state::ExportWhat;

pub use crate::unsaved::Answer;

/// A file dialog the app can open (off the UI thread).
#[derive(Debug, Clone)]
pub enum DialogKind {
    Image,
    Model,
    Export(ExportWhat, String),
    /// Where to save the edited model (the dialog asks before replacing a file).
    SaveModel,
    /// A folder of labelled images to evaluate the edits on.
    EvalFolder,
    /// A folder of labelled images to train on.
    TrainFolder,
    /// A lesson file (.toml).
    Lesson,
    /// A folder of images to search for what a channel wants to see.
    ExamplesFolder,
    /// A weights file to pin as model A of a comparison.
    PinFile,
    /// A folder of labelled images to compare A's and B's accuracy on.
    CompareFolder,
    /// Where to write the model for PyTorch (TorchScript, or safetensors).
    ExportModel {
        torchscript: bool,
    },
}

/// Comparing model A (pinned) with the current model, B.
#[derive(Debug, Clone)]
pub enum CompareCommand {
    /// Pin a model as A (None: unpin).
    Pin(Option<glassbox_engine::session::PinSource>),
    /// Compare A and B on the current image again.
    Refresh,
    /// The kernels of a convolution in A and B.
    Filters(String),
    /// A's and B's per-class accuracy on labelled images.
    Accuracy(glassbox_engine::worker::EvalSet),
}

/// The top images of the chosen channel.
#[derive(Debug, Clone)]
pub enum ExamplesCommand {
    Source(glassbox_engine::finetune::DataSource),
    PerClass(usize),
    /// Search the data for the chosen channel of the shown layer.
    Find,
}

/// Running a lesson.
#[derive(Debug, Clone)]
pub enum LessonCommand {
    /// A builtin lesson (by file name) or a lesson file.
    OpenBuiltin(String),
    OpenFile(PathBuf),
    /// Step n (from 0), its model, image, views and settings put in place.
    Go(usize),
    /// The current step's settings again (after leaving the script).
    Again,
    Answer,
    Close,
}

/// The drawing canvas.
#[derive(Debug, Clone)]
pub enum DrawCommand {
    Stroke { from: (f32, f32), to: (f32, f32) },
    Brush(f32),
    Erase(bool),
    Clear,
}

/// Retraining from the Retrain panel.
#[derive(Debug, Clone)]
pub enum TrainCommand {
    /// The panel's settings changed.
    Form(crate::state::TrainForm),
    /// The data to train on.
    Data(glassbox_engine::finetune::DataSource),
    Start,
    Pause(bool),
    /// A new learning rate for the run going on (as typed).
    SetLr(String),
    Cancel,
    /// Show the candidate at this point of its timeline.
    Scrub(usize),
    /// The validation images of a confusion cell.
    Cell {
        truth: usize,
        predicted: usize,
    },
    Accept,
    Discard,
}

#[derive(Debug, Clone)]
pub enum Command {
    /// A new image: decoded, prepared for the model, and every view follows.
    SetImage(ImageSource),
    /// A file dropped or chosen: weights open as the model, anything else as the image.
    OpenPath(PathBuf),
    OpenModel(ModelSource, Option<Arch>),
    /// The answer to "Unsaved changes": Save… / Discard / Cancel.
    Answer(Answer),
    /// The class every explanation explains (None: the top-1 class).
    SetTarget(Option<i64>),
    /// The layer whose channels are shown; the filters follow it.
    SetLayer(String),
    /// The layer the CAM methods look at (None: the last spatial layer).
    SetCamLayer(Option<String>),
    /// The convolution whose kernels the filters view shows.
    SetFilterConv(String),
    SetPerInput(bool),
    SetSharedScale(bool),
    /// The activation grid shows the change an edit made (edited minus original).
    SetShowChange(bool),
    /// Opens filter `out` of convolution `conv` in the editor: the convolution's output
    /// becomes the shown layer and that channel the chosen one.
    EditFilter {
        conv: String,
        out: usize,
    },
    /// A channel of the activation layer; with a position, also its receptive field.
    SelectChannel {
        channel: usize,
        at: Option<(usize, usize)>,
    },
    /// The receptive field of one position of a layer.
    RequestField {
        layer: String,
        channel: Option<usize>,
        y: usize,
        x: usize,
    },
    HideField,
    AddSlot(Method),
    RemoveSlot(usize),
    SetMethod(usize, Method),
    /// New parameters for a slot; `run` computes its map again (false while dragging).
    SetSlotParams {
        id: usize,
        params: Params,
        run: bool,
    },
    SanitySlot(usize),
    /// The scoreboard: every method (None), or one CAM method at each candidate layer.
    Score(Option<Method>),
    CancelSlot(usize),
    /// Stops every long computation (Esc).
    CancelAll,
    SetColormap(String),
    SetOpacity(f32),
    Dialog(DialogKind),
    Paste,
    Export(ExportWhat, PathBuf),
    DismissErrors,
    ToggleHelp,
    RestartEngine,
    /// A change to the model by hand, undo, redo, go to a point of the log, reset, save,
    /// evaluate against the original.
    Edit(EditRequest),
    /// The seed of the next grown image.
    VisualSeed(i64),
    /// Grow an image that maximises a channel or a class (seeded).
    Visualize {
        goal: glassbox_engine::visualize::Goal,
        seed: i64,
    },
    /// What the chosen channel wants to see: the data, then its top images.
    Examples(ExamplesCommand),
    /// Lessons: open one, go to a step, show the step again, show its answer, close.
    Lesson(LessonCommand),
    /// Presentation mode on or off (F5).
    Present(bool),
    /// One of the four layouts (Ctrl+1 to Ctrl+4).
    Layout(crate::tiles::Layout),
    /// The layout shown, back as it came.
    ResetLayout,
    /// A view brought to the front (its tab, or a layout that has it).
    Show(crate::tiles::Pane),
    /// One pane alone over its layout (None: the layout again).
    Maximise(Option<crate::tiles::Pane>),
    /// One view alone, full window (None: every view).
    Focus(Option<crate::state::Focus>),
    /// Opens (or closes, None) the "Explain this" window on a view or method.
    ExplainThis(Option<crate::state::Topic>),
    /// Draw a digit: a stroke between two canvas points (the same point twice: a dab),
    /// the brush, the eraser, clear. Every change is the model's input at once.
    Draw(DrawCommand),
    /// Two models side by side: pin A, compare again, a layer's filters, accuracies.
    Compare(CompareCommand),
    /// The model for PyTorch: a TorchScript module (or safetensors with PyTorch's keys).
    ExportModel {
        path: PathBuf,
        torchscript: bool,
    },
    /// Retraining: settings, start, pause, learning rate, cancel, timeline, confusion cells,
    /// accept or discard.
    Train(TrainCommand),
    /// A fault injected into the engine (tests of survival).
    #[doc(hidden)]
    InjectFault(Fault),
}
