//! `glassbox lesson check` and `lesson list`: the builtin lessons are fine; a broken one
//! has each of its problems listed, with its step.
mod common;

use common::*;

#[test]
fn the_builtin_lessons_check_out_and_are_listed() {
    let dir = asset("assets/lessons");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    let mut args = vec!["lesson", "check"];
    args.extend(files.iter().map(String::as_str));
    let o = glassbox(&args);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).matches(", fine").count(), 3, "{}", stdout(&o));
    let o = glassbox(&["lesson", "list"]);
    let text = stdout(&o);
    for title in [
        "What does a CNN look at?",
        "What does a filter do?",
        "Teach it something new",
    ] {
        assert!(text.contains(title), "{text}");
    }
}

#[test]
fn a_broken_lesson_lists_each_problem_with_its_step() {
    let dir = tmp();
    let f = dir.path().join("broken.toml");
    std::fs::write(
        &f,
        r#"
title = "Broken"
[[step]]
title = "one"
text = "a missing picture and a layer the model does not have"
model = "mnist"
image = "nope.png"
layer = "_blocks.3"
[[step]]
title = "two"
text = "bad names"
methods = ["grad-cam", "magic"]
view = "everything"
target = 12
[[step]]
title = "three"
text = "no data"
image = "sample:dog.png"
train = { data = "missing-folder", mode = "add-classes" }
"#,
    )
    .unwrap();
    let o = glassbox(&["lesson", "check", path_str(&f)]);
    assert_clean_error(&o, &["7 problem(s)"]);
    let out = stdout(&o);
    for want in [
        "step 1 (one): image:",
        "nope.png",
        "step 1 (one): layer `_blocks.3` is not a layer of `mnist`",
        "step 2 (two): unknown method `magic`",
        "step 2 (two): unknown view `everything`",
        "step 2 (two): target 12 is not a class of `mnist` (0 to 9)",
        "step 3 (three): no bundled sample `dog.png`",
        "step 3 (three): training data:",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // Not TOML, or a field no lesson has: one line naming the file.
    std::fs::write(
        &f,
        "title = \"x\"\n[[step]]\ntitle = \"a\"\ntext = \"b\"\nmodle = \"mnist\"\n",
    )
    .unwrap();
    assert_clean_error(&glassbox(&["lesson", "check", path_str(&f)]), &["broken.toml", "modle"]);
    // Nesting 200,000 deep: refused by the parser's depth limit, in one short line.
    let deep = format!(
        "title = \"x\"\nabout = {}{}\n",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    std::fs::write(&f, deep).unwrap();
    let o = glassbox(&["lesson", "check", path_str(&f)]);
    assert_clean_error(&o, &["broken.toml", "line 2", "recursion"]);
    assert!(stderr(&o).len() < 400, "the source line is not echoed");
}
