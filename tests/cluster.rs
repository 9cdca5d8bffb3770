//! Batch work on a cluster: the command lines of examples/slurm-explain.sbatch and
//! examples/k8s-explain.yaml, run here with the variables each scheduler sets, together
//! write exactly what one unsharded run writes.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The `glassbox ...` line of the Slurm script, split into arguments.
fn slurm_args() -> Vec<String> {
    let script = std::fs::read_to_string(asset("examples/slurm-explain.sbatch")).unwrap();
    let line = script
        .lines()
        .find(|l| l.starts_with("glassbox "))
        .expect("a glassbox line");
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// The container's command of the Kubernetes manifest (a YAML flow list, valid JSON).
fn k8s_args() -> Vec<String> {
    let manifest = std::fs::read_to_string(asset("examples/k8s-explain.yaml")).unwrap();
    let line = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("command: "))
        .expect("a command line");
    let v: Vec<String> = serde_json::from_str(line).unwrap();
    assert_eq!(v[0], "glassbox");
    v[1..].to_vec()
}

/// Runs `args` in `dir` with `vars` set (and the scheduler variables of this machine cleared).
fn run_in(dir: &Path, args: &[String], vars: &[(&str, String)]) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_glassbox"));
    c.args(args).current_dir(dir);
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(v);
    }
    for (k, v) in vars {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{args:?} {vars:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A work folder with five photos in photos/.
fn work() -> tempfile::TempDir {
    let dir = tmp();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for (i, src) in ["chelsea.png", "coffee.png", "chelsea.png", "coffee.png", "chelsea.png"]
        .iter()
        .enumerate()
    {
        std::fs::copy(
            asset(&format!("assets/samples/{src}")),
            photos.join(format!("p{i}.png")),
        )
        .unwrap();
    }
    dir
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_slurm_array_and_the_indexed_job_together_equal_one_run() {
    let whole = work();
    let plain: Vec<String> = slurm_args()
        .into_iter()
        .scan(false, |skip, a| {
            // The same command without --shard and its value.
            let keep = !*skip && a != "--shard";
            *skip = a == "--shard";
            Some(keep.then_some(a))
        })
        .flatten()
        .collect();
    run_in(whole.path(), &plain, &[]);
    let want = listing(&whole.path().join("maps"));
    assert_eq!(want.len(), 5);

    let slurm = work();
    for id in 1..=4 {
        // An array declared as --array=1-4 numbers its tasks from 1.
        run_in(
            slurm.path(),
            &slurm_args(),
            &[
                ("SLURM_ARRAY_TASK_ID", id.to_string()),
                ("SLURM_ARRAY_TASK_COUNT", "4".into()),
                ("SLURM_ARRAY_TASK_MIN", "1".into()),
            ],
        );
    }
    assert_eq!(listing(&slurm.path().join("maps")), want, "Slurm shards");

    let k8s = work();
    for index in 0..4 {
        run_in(k8s.path(), &k8s_args(), &[("JOB_COMPLETION_INDEX", index.to_string())]);
    }
    assert_eq!(listing(&k8s.path().join("maps")), want, "Indexed Job shards");
}

#[test]
fn shard_auto_outside_a_scheduler_says_what_is_missing() {
    let dir = work();
    let o = Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(slurm_args())
        .current_dir(dir.path())
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_clean_error(&o, &["--shard auto", "SLURM_ARRAY_TASK_ID"]);
}
