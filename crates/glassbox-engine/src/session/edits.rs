//! Edits by hand: each applies in order; undo, redo and go-to restore values bit for bit.
//! Saving writes a new file with the edit log; evaluating compares the edited model with
//! the original on labelled images.

use std::path::Path;

use super::{EditState, EvalSet, Evaluated, Session, NO_MODEL};
use crate::edit::{self, Editor, Op};
use crate::error::{Error, Result};
use crate::evaluate;
use crate::model::{Model, ModelSource};

impl Session {
    /// The model, once `path` is a file it may be written to: never the model's own file
    /// (originals are never modified), an existing one only with `force`.
    pub(super) fn writable_to(&self, path: &Path, force: bool) -> Result<&Model> {
        let m = self.model()?;
        if let ModelSource::File(own) = &m.source {
            let same = own
                .canonicalize()
                .ok()
                .is_some_and(|a| Some(a) == path.canonicalize().ok());
            if same {
                return Err(Error::file(
                    path,
                    "is the model's own file; originals are never modified: choose another name",
                ));
            }
        }
        if path.exists() && !force {
            return Err(Error::file(path, "already exists; confirm to replace it"));
        }
        Ok(m)
    }

    /// The model and its editor, unless a retrained candidate waits for a decision.
    fn editable(&mut self) -> Result<(&mut Model, &mut Editor)> {
        let m = self.model.as_mut().ok_or_else(|| Error::invalid(NO_MODEL))?;
        if self.training.is_some() {
            return Err(Error::invalid(
                "the model is a retrained candidate: keep it (Accept) or discard it before editing by hand",
            ));
        }
        Ok((m, &mut self.editor))
    }

    /// Runs one change to the edits, then says what is in force.
    fn change(&mut self, f: impl FnOnce(&mut Model, &mut Editor) -> Result<()>) -> Result<EditState> {
        let (m, ed) = self.editable()?;
        f(m, ed)?;
        self.model_changed();
        self.edit_state()
    }

    /// The edits in force.
    pub fn edit_state(&self) -> Result<EditState> {
        Ok(EditState {
            log: self.editor.log(),
            redoable: self.editor.redoable(),
            knockouts: self.model()?.knockouts.iter().cloned().collect(),
        })
    }

    pub fn apply(&mut self, op: Op) -> Result<EditState> {
        self.change(|m, ed| ed.apply(m, op))
    }

    pub fn undo(&mut self) -> Result<EditState> {
        self.change(|m, ed| ed.undo(m).map(drop))
    }

    pub fn redo(&mut self) -> Result<EditState> {
        self.change(|m, ed| ed.redo(m).map(drop))
    }

    /// Back (or forward) to the point after the first `n` edits of the log.
    pub fn go_to(&mut self, n: usize) -> Result<EditState> {
        self.change(|m, ed| ed.go_to(m, n))
    }

    /// Every edit undone: the original model.
    pub fn reset(&mut self) -> Result<EditState> {
        self.change(|m, ed| ed.reset(m))
    }

    /// The model as a new safetensors file with its edit log; `force` replaces an existing
    /// file, never the model's own (originals are never modified).
    pub fn save(&self, path: &Path, force: bool) -> Result<()> {
        let m = self.writable_to(path, force)?;
        m.save(
            path,
            &edit::log_metadata(&self.full_log()?),
            crate::weights::StoreAs::F32,
        )
    }

    /// The whole edit log: the edits saved in the model's file, then this session's.
    pub(super) fn full_log(&self) -> Result<Vec<String>> {
        let mut log = edit::saved_log(self.model()?);
        log.extend(self.editor.log());
        Ok(log)
    }

    /// The edited model against the original on labelled images, per class (the edits are
    /// undone for the second pass and redone after, bit for bit).
    pub fn evaluate(&mut self, set: &EvalSet, progress: &mut dyn FnMut(usize, usize) -> bool) -> Result<Evaluated> {
        let m = self.model.as_mut().ok_or_else(|| Error::invalid(NO_MODEL))?;
        let ed = &mut self.editor;
        let labelled = match set {
            EvalSet::Dataset(d) => evaluate::dataset(*d)?,
            EvalSet::Folder(dir) => evaluate::folder(m, dir)?,
        };
        let n = ed.log().len();
        let total = 2 * labelled.len();
        let edited = evaluate::evaluate(m, &labelled, &mut |done, _| progress(done, total))?;
        ed.go_to(m, 0)?;
        let original = evaluate::evaluate(m, &labelled, &mut |done, t| progress(t + done, total));
        ed.go_to(m, n)?;
        let original = original?;
        let changes = evaluate::compare(&original, &edited);
        Ok(Evaluated {
            edited,
            original,
            changes,
        })
    }
}
