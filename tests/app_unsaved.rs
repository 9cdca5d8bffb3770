//! Nothing lost: with an edit not saved (or a retrained model in no file), opening another
//! model by any path (the Models menu, a dropped file, a lesson step) and closing the window
//! ask first, and each answer does what it says: Cancel keeps everything, Discard goes on,
//! Save… saves and then goes on. (The retrained candidate's paths are in `tests/app.rs`,
//! with the training they need.)
mod common;

use common::app::*;
use common::{asset, tmp};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use glassbox_app::unsaved::Then;
use glassbox_app::{Command, GlassboxApp};
use glassbox_engine::model::ModelSource;

type H = Harness<'static, GlassboxApp>;

const LITE0_ITEM: &str = "EfficientNet-Lite0: photos, 1,000 ImageNet classes";

/// The MNIST model with its first layer's first shown channel knocked out (not saved).
fn knocked_out() -> (H, String) {
    let mut h = mnist_app_on_conv1();
    let c = h.state().state.channel.as_ref().unwrap().channel;
    let label = format!("Knock out channel {c}");
    h.get_by_role_and_label(Role::Button, &label).scroll_to_me();
    h.run_steps(3);
    h.get_by_role_and_label(Role::Button, &label).click();
    h.step();
    settle(&mut h, "the knock-out", |a| {
        a.state.edits.len() == 1 && a.state.views_ready() && !a.busy()
    });
    (h, format!("knockout conv1:{c}"))
}

fn then(h: &H) -> Option<Then> {
    h.state().state.unsaved.question.as_ref().map(|q| q.then.clone())
}

fn mnist_file() -> ModelSource {
    ModelSource::File(asset("assets/mnist-tiny-cnn.safetensors"))
}

fn is_model(a: &GlassboxApp, src: &ModelSource) -> bool {
    a.state.model.as_ref().is_some_and(|m| m.source == *src) && a.state.views_ready() && !a.busy()
}

fn pick_from_models_menu(h: &mut H, item: &str) {
    h.get_by_label("Models").click();
    h.run_steps(2);
    h.get_by_label(item).click();
    // The click lands, the menu closes, then any question shows.
    h.run_steps(3);
}

#[test]
fn a_builtin_model_from_the_models_menu_asks_first_cancel_keeps_the_edit_and_discard_opens_it() {
    let (mut h, edit) = knocked_out();
    pick_from_models_menu(&mut h, LITE0_ITEM);
    // The question names what would be lost; nothing was sent to the engine.
    h.get_by_label("Unsaved changes");
    h.get_by_label_contains(&format!("1 edit not saved ({edit})"));
    assert_eq!(
        then(&h),
        Some(Then::Open(ModelSource::Builtin("efficientnet-lite0".into()), None))
    );
    assert!(!h.state().busy(), "nothing sent to the engine before the answer");
    // Esc answers Cancel (and nothing else: the running work is not cancelled by it).
    h.key_press(egui::Key::Escape);
    h.run_steps(3);
    let s = &h.state().state;
    assert_eq!(then(&h), None);
    assert_eq!(s.model.as_ref().unwrap().source, mnist_file());
    assert_eq!(s.edits, std::slice::from_ref(&edit));
    assert!(h.query_by_label("Unsaved changes").is_none());
    // The model file opened is one click away now, under Recent files.
    h.get_by_label("Models").click();
    h.run_steps(2);
    h.get_by_label("Recent files");
    h.get_by_role_and_label(Role::Button, "mnist-tiny-cnn.safetensors");
    // Discard: the builtin model opens, the edit is gone, as the user chose.
    h.get_by_label(LITE0_ITEM).click();
    h.run_steps(3);
    h.get_by_role_and_label(Role::Button, "Discard").click();
    h.step();
    let lite0 = ModelSource::Builtin("efficientnet-lite0".into());
    settle(&mut h, "Lite0", |a| is_model(a, &lite0));
    assert!(h.state().state.edits.is_empty());
    // Nothing unsaved now: the MNIST model opens from the menu without a question.
    pick_from_models_menu(&mut h, "MNIST: handwritten digits (Draw a digit)");
    assert_eq!(then(&h), None);
    settle(&mut h, "the builtin MNIST model", |a| {
        is_model(a, &ModelSource::Builtin("mnist".into()))
    });
}

#[test]
fn a_dropped_model_file_asks_first_and_save_saves_the_edit_then_opens_it() {
    let (mut h, edit) = knocked_out();
    let fashion = asset("assets/fashion-mnist-tiny-cnn.safetensors");
    drop_file(&mut h, fashion.clone());
    h.run_steps(2);
    assert_eq!(then(&h), Some(Then::Open(ModelSource::File(fashion.clone()), None)));
    h.get_by_role_and_label(Role::Button, "Save…").click();
    h.step();
    assert!(h.state().state.unsaved.question.as_ref().unwrap().saving);
    // What the file dialog's answer does.
    let dir = tmp();
    let path = dir.path().join("knocked.safetensors");
    save_model_as(&mut h, &path);
    settle(&mut h, "the save, then the dropped model", |a| {
        is_model(a, &ModelSource::File(fashion.clone()))
    });
    let m = glassbox_engine::model::Model::open(path.as_path(), None, tch::Device::Cpu).unwrap();
    assert_eq!(glassbox_engine::edit::saved_log(&m), [edit]);
    assert_eq!(then(&h), None);
}

#[test]
fn a_saved_edit_is_not_asked_about_but_a_later_one_is() {
    let (mut h, _) = knocked_out();
    let dir = tmp();
    save_model_as(&mut h, &dir.path().join("saved.safetensors"));
    settle(&mut h, "the save", |a| a.state.notice.is_some() && !a.busy());
    assert!(h.state().state.at_risk().is_empty());
    // A second edit after the save is unsaved again.
    let c = h.state().state.channel.as_ref().unwrap().channel;
    let other = if c == 0 { 1 } else { 0 };
    h.state_mut()
        .apply(Command::Edit(glassbox_engine::worker::EditRequest::Apply(
            format!("knockout conv1:{other}").parse().unwrap(),
        )));
    settle(&mut h, "a second knock-out", |a| a.state.edits.len() == 2 && !a.busy());
    let lose = h.state().state.at_risk();
    assert_eq!(lose.len(), 1, "{lose:?}");
    assert!(lose[0].starts_with("2 edits not saved"), "{lose:?}");
}

#[test]
fn a_lesson_step_that_opens_another_model_asks_first() {
    let (mut h, edit) = knocked_out();
    h.get_by_label("Lessons").click();
    h.run_steps(2);
    h.get_by_label("What does a CNN look at?").click();
    h.run_steps(3);
    let lite0 = ModelSource::Builtin("efficientnet-lite0".into());
    assert_eq!(then(&h), Some(Then::Open(lite0.clone(), None)));
    assert_eq!(h.state().state.edits, [edit]);
    h.get_by_role_and_label(Role::Button, "Discard").click();
    h.step();
    settle(&mut h, "the lesson's model", |a| is_model(a, &lite0));
}

fn close_window(h: &mut H) {
    h.input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.step();
}

fn asked_to(h: &H, cmd: &egui::ViewportCommand) -> bool {
    h.output()
        .viewport_output
        .get(&egui::ViewportId::ROOT)
        .is_some_and(|v| v.commands.contains(cmd))
}

#[test]
fn closing_the_window_with_an_edit_asks_first_and_discard_closes_it() {
    let (mut h, _) = knocked_out();
    close_window(&mut h);
    assert!(asked_to(&h, &egui::ViewportCommand::CancelClose), "the close is held");
    assert_eq!(then(&h), Some(Then::Quit));
    h.run_steps(2);
    h.get_by_label("Closing Glassbox would lose:");
    h.get_by_role_and_label(Role::Button, "Discard").click();
    h.step();
    assert!(asked_to(&h, &egui::ViewportCommand::Close), "the window closes");
    assert!(h.state().state.unsaved.quit_confirmed);
}

#[test]
fn closing_the_window_with_nothing_unsaved_does_not_ask() {
    let mut h = mnist_app_on_conv1();
    close_window(&mut h);
    assert!(!asked_to(&h, &egui::ViewportCommand::CancelClose));
    assert_eq!(then(&h), None);
}
