//! `glassbox lesson check FILE...`: validates lessons before a class (every model, image,
//! layer, method, view and folder they name); `glassbox lesson list`: the builtin ones.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tch::Device;

use glassbox_engine::lesson::{Lesson, BUILTIN};

#[derive(clap::Subcommand, Debug)]
pub enum LessonCommand {
    /// Check lesson files: each problem on a line, then a one-line verdict.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The lessons that come with Glassbox.
    List,
}

pub fn run(c: LessonCommand, device: Device) -> Result<()> {
    match c {
        LessonCommand::List => {
            for (name, _) in BUILTIN {
                let l = Lesson::builtin(name)?;
                println!("{name}: {} ({} steps)", l.title, l.steps.len());
            }
            Ok(())
        }
        LessonCommand::Check { files } => {
            let mut bad = 0;
            for f in &files {
                let l = Lesson::read(f)?;
                let problems = l.check(device);
                if problems.is_empty() {
                    println!("{}: \"{}\", {} steps, fine", f.display(), l.title, l.steps.len());
                } else {
                    for p in &problems {
                        println!("{}: {p}", f.display());
                    }
                    bad += problems.len();
                }
            }
            if bad > 0 {
                bail!("{bad} problem(s) in the lesson(s); each is listed above");
            }
            Ok(())
        }
    }
}
