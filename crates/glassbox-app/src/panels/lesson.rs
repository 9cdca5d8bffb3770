//! The lesson bar: the lesson's title, the step's title and text, its question (and the
//! answer on demand), back and next, the step again after leaving the script, close.

use egui::{RichText, Ui};

use crate::command::{Command, LessonCommand};
use crate::widgets::Ctx;

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let Some(run) = &cx.state.lesson else { return };
    let l = &run.lesson;
    let step = &l.steps[run.step];
    let cmd = |c| Command::Lesson(c);
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(format!("Lesson: {}", l.title)).strong());
        ui.label(format!("step {} of {}", run.step + 1, l.steps.len()));
        if ui
            .add_enabled(run.step > 0, egui::Button::new("< Back"))
            .on_hover_text("The step before (PageUp)")
            .clicked()
        {
            out.push(cmd(LessonCommand::Go(run.step - 1)));
        }
        if ui
            .add_enabled(run.step + 1 < l.steps.len(), egui::Button::new("Next >"))
            .on_hover_text("The next step (PageDown)")
            .clicked()
        {
            out.push(cmd(LessonCommand::Go(run.step + 1)));
        }
        if ui
            .button("Show this step again")
            .on_hover_text("Back to what this step shows, after exploring on your own.")
            .clicked()
        {
            out.push(cmd(LessonCommand::Again));
        }
        if ui.button("Close lesson").clicked() {
            out.push(cmd(LessonCommand::Close));
        }
    });
    ui.label(RichText::new(&step.title).size(20.0).strong());
    ui.label(&step.text);
    if let Some(q) = &step.question {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("Question: {q}")).strong());
            if let Some(a) = &step.answer {
                if run.answer_shown {
                    ui.label(RichText::new(format!("Answer: {a}")).italics());
                } else if ui.button("Show the answer").clicked() {
                    out.push(cmd(LessonCommand::Answer));
                }
            }
        });
    }
    ui.add_space(4.0);
}
