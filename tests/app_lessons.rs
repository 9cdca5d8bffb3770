//! The builtin lessons run in the app from start to end, driven like a student drives them:
//! the Lessons menu, *Next >*, the app's own buttons (clicked by role and label: a widget
//! that is not there fails the test), the canvas drawn on with the mouse, and frames stepped
//! until the background work lands. Each step is checked for what it says it shows.
mod common;

use common::app::*;
use common::asset;
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use glassbox_app::state::{Focus, TrainMode};
use glassbox_app::GlassboxApp;
use glassbox_engine::model::ModelSource;

type H = Harness<'static, GlassboxApp>;

fn ready(a: &GlassboxApp) -> bool {
    a.state.views_ready() && !a.busy()
}

fn step_of(h: &H) -> usize {
    h.state().state.lesson.as_ref().expect("a lesson runs").step
}

fn input_is(a: &GlassboxApp, name: &str) -> bool {
    a.state.input.as_ref().is_some_and(|i| i.name.ends_with(name))
}

/// A builtin lesson from the Lessons menu, by its title.
fn open_lesson(h: &mut H, title: &str) {
    h.get_by_label("Lessons").click();
    h.run_steps(2);
    h.get_by_label(title).click();
    h.run_steps(2);
}

/// A button of the lesson bar (*Next >*, *< Back*), clicked; the step's work awaited.
fn lesson_button(h: &mut H, label: &str, what: &str) {
    let before = step_of(h);
    h.get_by_role_and_label(Role::Button, label).click();
    h.run_steps(2);
    assert_ne!(step_of(h), before, "{label} moved the lesson");
    settle(h, what, ready);
}

/// A button of the app, scrolled into view (the scroll is animated: frames until it ends)
/// and clicked.
fn press(h: &mut H, label: &str) {
    h.get_by_role_and_label(Role::Button, label).scroll_to_me();
    h.run_steps(30);
    h.get_by_role_and_label(Role::Button, label).click();
    h.step();
}

fn lite0() -> ModelSource {
    ModelSource::Builtin("efficientnet-lite0".into())
}

/// Lesson 3, *Teach it something new*, from the menu: step 1 (the seven on Lite0, not a
/// digit), *Next >* to the training step (its Retrain settings in place), the app's own
/// *Start training* pressed and the run awaited: a candidate with 1002 classes.
fn lesson_3_trained() -> H {
    let mut h = app();
    open_lesson(&mut h, "Teach it something new");
    settle(&mut h, "step 1: the seven on Lite0", |a| {
        ready(a) && input_is(a, "a-seven.png")
    });
    let s = &h.state().state;
    assert_eq!(step_of(&h), 0);
    assert_eq!(s.focus, Some(Focus::Prediction));
    assert_eq!(s.settings.model, lite0());
    assert_eq!(s.model.as_ref().unwrap().classes, 1000);
    assert!(!s.top[0].label.starts_with("digit-"), "before: {:?}", s.top[0]);
    h.get_by_label("Question: What does the network call this seven, and how sure is it?");

    lesson_button(&mut h, "Next >", "step 2: the training step");
    let s = &h.state().state;
    assert_eq!(s.focus, Some(Focus::Retrain));
    let f = &s.training.form;
    assert!(
        matches!(&f.source, Some(glassbox_engine::finetune::DataSource::Folder(p)) if p.ends_with("two-digits")),
        "{:?}",
        f.source
    );
    assert_eq!(
        (f.mode, f.epochs, f.lr.as_str(), f.val_split),
        (TrainMode::AddClasses, 10, "0.01", 0.2)
    );
    press(&mut h, "Start training");
    assert!(h.state().state.training.running.is_some(), "the button started a run");
    settle(&mut h, "the training run", |a| {
        a.state.training.running.is_none() && a.state.training.result.is_some() && ready(a)
    });
    let s = &h.state().state;
    let m = s.model.as_ref().unwrap();
    assert_eq!(m.classes, 1002);
    assert_eq!(&m.labels[1000..], ["digit-3", "digit-7"]);
    let r = s.training.result.as_ref().unwrap();
    assert_eq!(r.summary.imprinted, ["digit-3", "digit-7"]);
    assert_eq!(r.summary.epochs.last().unwrap().epoch, 10, "ten epochs");
    assert!(r.summary.val_accuracy.is_some(), "validation pictures were held out");
    h
}

/// The last step: the seven again, on the kept model, is a `digit-7`.
fn the_seven_after(h: &mut H) {
    settle(h, "step 4: the seven again", |a| ready(a) && input_is(a, "a-seven.png"));
    let s = &h.state().state;
    assert_eq!(step_of(h), 3);
    assert_eq!(s.focus, Some(Focus::Prediction));
    assert_eq!(
        s.model.as_ref().unwrap().classes,
        1002,
        "the model just trained and kept is still the model (not Lite0 opened again); model: {}",
        s.settings.model
    );
    assert_ne!(s.settings.model, lite0());
    assert_eq!(s.top[0].label, "digit-7", "{:?}", s.top);
    h.get_by_label("Question: Is the seven a digit-7 now?");
}

/// Issue 17: train, *Keep it* at once, *Next >*, *Next >*: the last step named no model, so it
/// showed the one step 1 named (Lite0), opened again: the taught model was dropped and the
/// seven was an assault rifle again.
#[test]
fn lesson_3_trained_kept_then_next_next_shows_the_seven_as_digit_7() {
    let mut h = lesson_3_trained();
    press(&mut h, "Keep it");
    settle(&mut h, "the kept model", |a| {
        a.state.training.result.is_none() && ready(a)
    });
    assert_eq!(h.state().state.model.as_ref().unwrap().classes, 1002);
    lesson_button(&mut h, "Next >", "step 3");
    assert_eq!(
        h.state().state.model.as_ref().unwrap().classes,
        1002,
        "step 3 keeps the kept model"
    );
    lesson_button(&mut h, "Next >", "step 4");
    the_seven_after(&mut h);
}

/// The lesson as its text says: train in step 2, *Next >* to the confusion matrix of the
/// candidate, a cell clicked, *Keep it*, *Next >*; the seven is a digit-7 and the cat still a
/// tiger cat. Back to step 1 keeps the taught model; the lesson opened again starts from
/// Lite0 again.
#[test]
fn lesson_3_as_written_confusion_matrix_then_keep_it_and_the_seven_is_digit_7() {
    let mut h = lesson_3_trained();
    lesson_button(&mut h, "Next >", "step 3: the confusion matrix");
    let s = &h.state().state;
    assert_eq!(s.focus, Some(Focus::Retrain));
    assert_eq!(
        s.model.as_ref().unwrap().classes,
        1002,
        "the candidate is still the model"
    );
    let r = s
        .training
        .result
        .as_ref()
        .expect("the candidate and its confusion matrix are still there to look at");
    // The fullest cell of the matrix, clicked where the student sees it: in the column of its
    // predicted class (headers on top) and the row of its true class (headers on the left).
    let classes = r.summary.plan.classes.clone();
    assert_eq!(classes, ["digit-3", "digit-7"]);
    let confusion = r.summary.confusion.clone();
    let held_out: u64 = confusion.iter().flatten().sum();
    assert_eq!(held_out as usize, r.summary.plan.val_images);
    assert!(held_out > 0);
    let (t, p, n) = (0..2)
        .flat_map(|t| (0..2).map(move |p| (t, p)))
        .map(|(t, p)| (t, p, confusion[t][p]))
        .max_by_key(|c| c.2)
        .unwrap();
    h.get_by_label("Confusion on the validation images (rows: true class; click a cell)");
    let headers = |name: &str| -> Vec<egui::Rect> {
        let mut r: Vec<egui::Rect> = h.query_all_by_label(name).map(|n| n.rect()).collect();
        r.sort_by(|a, b| a.top().total_cmp(&b.top()));
        r
    };
    let (col, row) = (headers(&classes[p])[0], *headers(&classes[t]).last().unwrap());
    let want = egui::pos2(col.center().x, row.center().y);
    let cell = h
        .query_all_by_role_and_label(Role::Button, &n.to_string())
        .map(|b| b.rect())
        .min_by(|a, b| a.center().distance(want).total_cmp(&b.center().distance(want)))
        .expect("the confusion matrix's cells are buttons");
    assert!(cell.contains(want), "cell {cell:?} at {want:?}");
    click_at(&mut h, cell.center());
    h.step();
    settle(&mut h, "the cell's pictures", |a| {
        a.state.training.cell.is_some() && !a.busy()
    });
    let (ct, cp, images) = h.state().state.training.cell.as_ref().unwrap();
    assert_eq!((*ct, *cp, images.len()), (t, p, n as usize));
    press(&mut h, "Keep it");
    settle(&mut h, "the kept model", |a| {
        a.state.training.result.is_none() && ready(a)
    });
    lesson_button(&mut h, "Next >", "step 4");
    the_seven_after(&mut h);
    // "The cat photo still says 'tiger cat'".
    drop_file(&mut h, asset("assets/samples/chelsea.png"));
    settle(&mut h, "the cat", |a| ready(a) && input_is(a, "chelsea.png"));
    assert_eq!(h.state().state.top[0].label, "tiger cat", "{:?}", h.state().state.top);
    // Back to "A seven, before": the lesson changed the model, so it stays.
    for k in [2, 1, 0] {
        lesson_button(&mut h, "< Back", "the step before");
        assert_eq!(step_of(&h), k);
    }
    settle(&mut h, "step 1 again", |a| ready(a) && input_is(a, "a-seven.png"));
    assert_eq!(h.state().state.model.as_ref().unwrap().classes, 1002);
    assert_eq!(h.state().state.top[0].label, "digit-7");
    // The lesson closed and opened again starts from the model it names, once the teacher
    // says the kept model (in no file) may go.
    h.get_by_role_and_label(Role::Button, "Close lesson").click();
    h.run_steps(2);
    open_lesson(&mut h, "Teach it something new");
    h.run_steps(2);
    let q = h
        .state()
        .state
        .unsaved
        .question
        .clone()
        .expect("asked before the kept model goes");
    assert!(q.lose.iter().any(|l| l.contains("you kept")), "{:?}", q.lose);
    assert_eq!(h.state().state.model.as_ref().unwrap().classes, 1002);
    h.get_by_role_and_label(Role::Button, "Discard").click();
    h.step();
    settle(&mut h, "step 1 on Lite0", |a| {
        ready(a) && a.state.model.as_ref().is_some_and(|m| m.classes == 1000)
    });
    assert_eq!(h.state().state.settings.model, lite0());
    assert!(!h.state().state.top[0].label.starts_with("digit-"));
}

/// Lesson 2, *What does a filter do?*: conv1's 16 kernels, a 7 drawn with the mouse (the
/// prediction and conv1's channels follow each stroke), a channel clicked in the grid (its
/// kernel beside it), the kernel turned into an edge detector with the *edge* button (the
/// channel and the prediction change), and Undo (the model back, bit for bit).
#[test]
fn lesson_2_filters_a_drawn_seven_a_clicked_channel_and_an_edge_kernel_undone() {
    let mut h = app();
    open_lesson(&mut h, "What does a filter do?");
    settle(&mut h, "step 1: conv1's filters", |a| {
        ready(a)
            && a.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn")
            && input_is(a, "chelsea.png")
            && a.state.filters.as_ref().is_some_and(|f| f.0 == "conv1")
            && a.state.channels.as_ref().is_some_and(|c| c.layer == "conv1")
    });
    let s = &h.state().state;
    assert_eq!(step_of(&h), 0);
    assert_eq!(s.focus, Some(Focus::Filters));
    assert_eq!(s.settings.model, ModelSource::Builtin("mnist".into()));
    assert_eq!(s.settings.layer.as_deref(), Some("conv1"));
    assert_eq!(s.settings.filter_conv.as_deref(), Some("conv1"));
    assert_eq!(s.filters.as_ref().unwrap().1, [16, 1, 3, 3], "16 kernels of 3x3");
    h.get_by_label("Question: Can you find a kernel that looks like an edge?");

    // Step 2: draw a 7 on the canvas; each stroke runs the network again.
    lesson_button(&mut h, "Next >", "step 2: draw a digit");
    let s = &h.state().state;
    assert_eq!(s.focus, Some(Focus::Prediction));
    assert_eq!(s.channels.as_ref().unwrap().layer, "conv1");
    let cat_channels = s.channels.as_ref().unwrap().data.clone();
    // The canvas: under the "Draw a digit" heading (the lowest of the two labels: the step's
    // title is the other), above its Clear button.
    let clear = h.get_by_role_and_label(Role::Button, "Clear").rect();
    let heading = h
        .query_all_by_label("Draw a digit")
        .map(|n| n.rect())
        .filter(|r| r.bottom() < clear.top())
        .max_by(|a, b| a.top().total_cmp(&b.top()))
        .expect("the canvas's heading");
    let (top, bottom) = (heading.bottom() + 4.0, clear.top() - 4.0);
    let side = bottom - top;
    let at = |x: f32, y: f32| egui::pos2(heading.left() + side * x, top + side * y);
    let line = |a: (f32, f32), b: (f32, f32)| -> Vec<egui::Pos2> {
        (0..=12)
            .map(|i| {
                let t = i as f32 / 12.0;
                at(a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
            })
            .collect()
    };
    // The bar of the seven, then its stem.
    drag_through(&mut h, &line((0.25, 0.22), (0.72, 0.22)));
    settle(&mut h, "the bar's views", |a| ready(a) && input_is(a, "your drawing"));
    let bar = h.state().state.channels.as_ref().unwrap().data.clone();
    let bar_top = h.state().state.top.clone();
    assert_ne!(bar, cat_channels, "conv1's channels follow the pen");
    drag_through(&mut h, &line((0.72, 0.22), (0.42, 0.82)));
    settle(&mut h, "the seven's views", |a| {
        ready(a) && a.state.channels.as_ref().is_some_and(|c| c.data != bar)
    });
    let s = &h.state().state;
    assert_eq!(s.channels.as_ref().unwrap().layer, "conv1");
    assert_ne!(
        s.top.iter().map(|c| c.logit.to_bits()).collect::<Vec<_>>(),
        bar_top.iter().map(|c| c.logit.to_bits()).collect::<Vec<_>>(),
        "the prediction follows the second stroke"
    );
    assert_eq!(s.top[0].label, "7", "the drawn seven: {:?}", s.top);

    // Step 3: conv1's channels of the drawing; a channel clicked shows its kernel.
    lesson_button(&mut h, "Next >", "step 3: the channels");
    let s = &h.state().state;
    assert_eq!(s.focus, Some(Focus::Activations));
    assert!(input_is(h.state(), "your drawing"), "the drawing stays the input");
    let ch = s.channels.as_ref().unwrap();
    assert_eq!((ch.layer.as_str(), ch.c), ("conv1", 16));
    let (grid, layout) = s.grid.as_ref().unwrap();
    let (gw, gh) = (grid.width() as f32, grid.height() as f32);
    let shown = s.channel.as_ref().unwrap().channel;
    // A tile other than the channel shown: the second in the order (or the first).
    let k = if ch.order[1].0 != shown { 1 } else { 0 };
    let want = ch.order[k].0;
    // The grid is drawn as wide as the view allows (1x to 2x its pixels), its shape kept.
    let grid_rect = h
        .query_all_by_role(Role::Image)
        .map(|n| n.rect())
        .find(|r| {
            let z = r.width() / gw;
            (1.0..=2.0 + 1e-3).contains(&z) && (r.height() - gh * z).abs() < 1.0
        })
        .expect("the activation grid is shown as an image");
    let z = grid_rect.width() / gw;
    let (col, row) = (k % layout.cols, k / layout.cols);
    let tile = egui::pos2(
        grid_rect.left() + z * ((col * (layout.tile_w + layout.gap)) as f32 + layout.tile_w as f32 / 2.0),
        grid_rect.top() + z * ((row * (layout.tile_h + layout.gap)) as f32 + layout.tile_h as f32 / 2.0),
    );
    click_at(&mut h, tile);
    h.step();
    settle(&mut h, "the clicked channel", |a| {
        a.state
            .channel
            .as_ref()
            .is_some_and(|d| d.channel == want && d.kernel_values.len() == 9)
            && !a.busy()
    });
    let d = h.state().state.channel.as_ref().unwrap();
    assert_eq!(d.kernel.as_ref().unwrap().0, "conv1");
    // Its kernel beside it, with its values.
    h.get_by_role_and_label(Role::Button, &format!("kernel conv1.weight[{want},0]"));
    h.get_by_label("Question: Which channels light up on the strokes' edges, which on the strokes themselves?");

    // Step 4: the kernel turned into an edge detector changes the channel and the prediction.
    lesson_button(&mut h, "Next >", "step 4: paint a filter");
    let s = &h.state().state;
    assert_eq!(s.focus, Some(Focus::Activations));
    assert_eq!(s.channel.as_ref().unwrap().channel, want, "the chosen channel stays");
    let logits = |a: &GlassboxApp| {
        a.state
            .top
            .iter()
            .map(|c| (c.index, c.logit.to_bits()))
            .collect::<Vec<_>>()
    };
    let before = logits(h.state());
    let before_kernel = s.channel.as_ref().unwrap().kernel_values.clone();
    let channel_data = |a: &GlassboxApp| {
        let ch = a.state.channels.as_ref().unwrap();
        let n = ch.h * ch.w;
        ch.data[want * n..(want + 1) * n].to_vec()
    };
    let before_channel = channel_data(h.state());
    assert!(
        h.get_by_role_and_label(Role::Button, "Undo edit")
            .accesskit_node()
            .is_disabled(),
        "no edit yet: nothing to undo"
    );
    press(&mut h, "edge");
    settle(&mut h, "the edge detector", |a| !a.state.edits.is_empty() && ready(a));
    let s = &h.state().state;
    assert_eq!(s.edits.len(), 1, "{:?}", s.edits);
    assert_eq!(
        s.channel.as_ref().unwrap().kernel_values,
        [-1., -1., -1., -1., 8., -1., -1., -1., -1.],
        "edits: {:?}",
        s.edits
    );
    assert_ne!(channel_data(h.state()), before_channel, "the channel changes");
    assert_ne!(logits(h.state()), before, "the prediction changes");
    assert!(s.original_top.is_some(), "the original prediction is shown beside it");
    h.get_by_label("Question: What happens to the channel when you turn its kernel into an edge detector?");
    // Undo, right beside the kernel editor in the step's view: the model back, bit for bit.
    let undo = "Undo edit";
    let back = |h: &mut H, what: &str| {
        settle(h, what, |a| a.state.edits.is_empty() && ready(a));
        let s = &h.state().state;
        assert_eq!(s.focus, Some(Focus::Activations), "{what}: still the step's view");
        assert_eq!(
            logits(h.state()),
            before,
            "{what}: the logits are what they were, bit for bit"
        );
        assert_eq!(s.channel.as_ref().unwrap().kernel_values, before_kernel, "{what}");
        assert_eq!(channel_data(h.state()), before_channel, "{what}");
    };
    press(&mut h, undo);
    back(&mut h, "the Undo button");
    assert!(
        h.get_by_role_and_label(Role::Button, undo)
            .accesskit_node()
            .is_disabled(),
        "nothing left to undo"
    );
    // Redo beside it: the edge detector again.
    let edge = [-1., -1., -1., -1., 8., -1., -1., -1., -1.];
    press(&mut h, "Redo edit");
    settle(&mut h, "the redo", |a| a.state.edits.len() == 1 && ready(a));
    assert_eq!(h.state().state.channel.as_ref().unwrap().kernel_values, edge);
    assert_ne!(
        logits(h.state()),
        before,
        "the redone edit changes the prediction again"
    );
    // Ctrl+Z undoes it too, from anywhere in the window; Ctrl+Shift+Z redoes it.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    back(&mut h, "Ctrl+Z");
    h.key_press_modifiers(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, egui::Key::Z);
    h.step();
    settle(&mut h, "Ctrl+Shift+Z", |a| a.state.edits.len() == 1 && ready(a));
    assert_eq!(h.state().state.channel.as_ref().unwrap().kernel_values, edge);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.step();
    back(&mut h, "Ctrl+Z after the redo");
}
