//! Saves survive a kill: a process killed (SIGKILL) at random moments while it saves
//! weights or exports a picture leaves the previous file intact or the new one complete,
//! never a mix. The only other file a kill may leave is the save's hidden temporary name
//! (a kill between naming it and renaming it, two system calls apart), and the next save
//! of that file removes it.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use glassbox_engine::arch::Arch;
use glassbox_engine::model::Model;
use rand::{Rng, SeedableRng};

/// Every file in `dir`, hidden ones included.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `args` to the end once, returning what it wrote to `out` and how long it took.
fn complete(args: &[String], out: &Path) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (std::fs::read(out).unwrap(), t.elapsed())
}

/// Alternates two commands that write `out` with different content, killing each at a
/// random moment in the second half of its run (where the saving happens); after every
/// kill the file must be one of the two complete outputs and the folder may hold at most
/// the save's hidden temporary beside it, gone after the next complete save. Returns how many kills left the old content and how many the new.
fn kill_while_saving(variants: [Vec<String>; 2], out: &Path, kills: usize, seed: u64) -> (usize, usize) {
    let dir = out.parent().unwrap();
    let (a, ta) = complete(&variants[0], out);
    let (b, tb) = complete(&variants[1], out);
    assert_ne!(a, b, "the two variants must write different content");
    let full = [a, b];
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let (mut old, mut new) = (0, 0);
    let mut current = 1; // the file now holds variant 1
    for k in 0..kills {
        let v = k % 2;
        let run = if v == 0 { ta } else { tb };
        let at = run.mul_f64(rng.random_range(0.45..1.05));
        let mut child = Command::new(env!("CARGO_BIN_EXE_glassbox"))
            .args(&variants[v])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = std::fs::read(out).expect("the file is still there");
        if now == full[current] {
            old += 1;
        } else if now == full[1 - current] {
            new += 1;
            current = 1 - current;
        } else {
            panic!(
                "kill {k} at {at:?} left {} bytes that are neither the old nor the new file",
                now.len()
            );
        }
        let name = out.file_name().unwrap().to_string_lossy().into_owned();
        let others: Vec<String> = listing(dir).into_iter().filter(|n| *n != name).collect();
        let hidden = format!(".{name}.glassbox-");
        assert!(
            others.len() <= 1 && others.iter().all(|n| n.starts_with(&hidden) && n.ends_with(".tmp")),
            "kill {k} at {at:?} left other files than at most one hidden temporary: {others:?}"
        );
    }
    // A complete save afterwards removes whatever temporary a kill left.
    complete(&variants[current], out);
    assert_eq!(
        listing(dir),
        [out.file_name().unwrap().to_string_lossy().into_owned()],
        "a complete save after the kills left other files"
    );
    (old, new)
}

/// Kills each command of `variants` in turn while it is inside the write for sure: the
/// test-only pause of `files::write_atomic` (bytes written and synced, not yet named) says
/// so on stderr, and the kill comes then. Every such kill must leave the previous content
/// and nothing else in the folder.
fn kill_inside_the_write(variants: &[Vec<String>; 2], out: &Path, kills: usize) {
    use std::io::{BufRead, BufReader};
    let dir = out.parent().unwrap();
    let before = std::fs::read(out).expect("a previous file to keep");
    for k in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_glassbox"))
            .args(&variants[k % 2])
            .env(glassbox_engine::files::TEST_PAUSE_VAR, "600000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let paused = lines.any(|l| l.is_ok_and(|l| l.contains("test pause:") && l.contains("not yet renamed")));
        let _ = child.kill(); // SIGKILL, inside the write
        let status = child.wait().unwrap();
        assert!(paused, "kill {k}: the save never reached its pause ({status})");
        assert!(!status.success(), "kill {k}: the process finished before the kill");
        assert_eq!(
            std::fs::read(out).unwrap(),
            before,
            "kill {k} inside the write changed the file"
        );
        assert_eq!(
            listing(dir),
            [out.file_name().unwrap().to_string_lossy().into_owned()],
            "kill {k} inside the write left other files"
        );
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

#[test]
fn weights_being_saved_survive_a_kill() {
    let inputs = tmp();
    // Two ResNet-50s (100 MB each as f32): a long enough save for kills to land inside it.
    let mut sources: Vec<PathBuf> = Vec::new();
    for seed in [1, 2] {
        tch::manual_seed(seed);
        let m = Model::new_random(Arch::ResNet(50), 10, 3, tch::Device::Cpu);
        let p = inputs.path().join(format!("resnet50-{seed}.safetensors"));
        m.save(&p, &Default::default(), glassbox_engine::weights::StoreAs::F32)
            .unwrap();
        sources.push(p);
    }
    let outdir = tmp();
    let out = outdir.path().join("imported.safetensors");
    let variant = |src: &Path| vec!["import".into(), s(src), "--out".into(), s(&out), "--force".into()];
    let variants = [variant(&sources[0]), variant(&sources[1])];
    let (old, new) = kill_while_saving(variants.clone(), &out, 16, 7);
    eprintln!("weights: {old} kills left the previous file, {new} the new one");
    kill_inside_the_write(&variants, &out, 4);
    // The survivor still opens as a model.
    let o = glassbox(&["layers", "--model", &s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_export_being_written_survives_a_kill() {
    let outdir = tmp();
    let out = outdir.path().join("overlay.png");
    let img = s(&asset("assets/samples/chelsea.png"));
    let variant = |method: &str| {
        vec![
            "explain".into(),
            img.clone(),
            "--model".into(),
            "mnist".into(),
            "--method".into(),
            method.into(),
            "--out".into(),
            s(&out),
        ]
    };
    let variants = [variant("gradient"), variant("occlusion")];
    let (old, new) = kill_while_saving(variants.clone(), &out, 16, 11);
    eprintln!("export: {old} kills left the previous file, {new} the new one");
    kill_inside_the_write(&variants, &out, 4);
    image::open(&out).expect("the surviving export is a complete PNG");
}
