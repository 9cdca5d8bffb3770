//! Fuzz targets for every loader a user's file reaches, through the entry points the app
//! uses: weights (safetensors, zip `.pth`, legacy `.pth`), images, and model validation.
//!
//! Each target runs over its committed corpus in `tests/fuzz/<target>/` (seed files, and
//! every input that ever crashed, kept as a regression file), then over random inputs that
//! bolero generates: mutations of the seeds (bit flips, byte and integer overwrites,
//! insertions, deletions; PNG chunk CRCs repaired, zip archives rebuilt around a mutated
//! pickle, safetensors headers rebuilt with hostile shapes and offsets) and structured
//! metadata. A target passes when every input gives Ok or an error: no panic, no abort.
//!
//! `make test` runs a bounded number of random inputs per target (FUZZ_ITERATIONS, 150 by
//! default); `make fuzz` runs each target for a set time and prints the executions per target
//! (BOLERO_RANDOM_TEST_TIME_MS). An input that panics is written to the target's corpus
//! folder as `crash-<hash>` before the test fails; with GLASSBOX_FUZZ_SAVE set, every input
//! is first written to target/fuzz-current-<target> so that `make fuzz` keeps the one that
//! aborted the process.
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bolero::generator::TypeGenerator;
use glassbox_engine::model::Model;
use glassbox_engine::{preprocess, weights};

/// One change to a seed file.
#[derive(Debug, Clone, TypeGenerator)]
enum Op {
    FlipBit {
        at: u32,
        bit: u8,
    },
    SetByte {
        at: u32,
        value: u8,
    },
    /// A little-endian integer written over the bytes at `at`: sizes, offsets and lengths.
    SetU32 {
        at: u32,
        value: Interesting32,
    },
    SetU64 {
        at: u32,
        value: Interesting64,
    },
    Insert {
        at: u32,
        bytes: Vec<u8>,
    },
    Delete {
        at: u32,
        len: u16,
    },
    /// A copy of `len` bytes from one place to another (repeats structures).
    Repeat {
        from: u32,
        to: u32,
        len: u16,
    },
    Truncate {
        at: u32,
    },
}

/// Integers that break parsers: boundaries, near-overflows, huge sizes.
#[derive(Debug, Clone, Copy, TypeGenerator)]
enum Interesting32 {
    Any(u32),
    Zero,
    One,
    Max,
    HighBit,
    Big,
}

#[derive(Debug, Clone, Copy, TypeGenerator)]
enum Interesting64 {
    Any(u64),
    Zero,
    Max,
    HighBit,
    FourGiB,
    Small(u8),
}

impl Interesting32 {
    fn get(self) -> u32 {
        match self {
            Interesting32::Any(v) => v,
            Interesting32::Zero => 0,
            Interesting32::One => 1,
            Interesting32::Max => u32::MAX,
            Interesting32::HighBit => 1 << 31,
            Interesting32::Big => 60_000,
        }
    }
}

impl Interesting64 {
    fn get(self) -> u64 {
        match self {
            Interesting64::Any(v) => v,
            Interesting64::Zero => 0,
            Interesting64::Max => u64::MAX,
            Interesting64::HighBit => 1 << 63,
            Interesting64::FourGiB => 1 << 32,
            Interesting64::Small(v) => v as u64,
        }
    }
}

/// A seed (by index) and the changes made to it.
#[derive(Debug, Clone, TypeGenerator)]
struct Mutation {
    seed: u8,
    #[generator(Vec::produce().with().len(0usize..8))]
    ops: Vec<Op>,
}

fn apply(seed: &[u8], ops: &[Op]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let at = |b: &Vec<u8>, a: u32| if b.is_empty() { 0 } else { a as usize % (b.len() + 1) };
    for op in ops {
        match op {
            Op::FlipBit { at: a, bit } => {
                if !b.is_empty() {
                    let i = *a as usize % b.len();
                    b[i] ^= 1 << (bit % 8);
                }
            }
            Op::SetByte { at: a, value } => {
                if !b.is_empty() {
                    let i = *a as usize % b.len();
                    b[i] = *value;
                }
            }
            Op::SetU32 { at: a, value } => {
                let i = at(&b, *a);
                for (k, v) in value.get().to_le_bytes().into_iter().enumerate() {
                    if let Some(x) = b.get_mut(i + k) {
                        *x = v;
                    }
                }
            }
            Op::SetU64 { at: a, value } => {
                let i = at(&b, *a);
                for (k, v) in value.get().to_le_bytes().into_iter().enumerate() {
                    if let Some(x) = b.get_mut(i + k) {
                        *x = v;
                    }
                }
            }
            Op::Insert { at: a, bytes } => {
                let i = at(&b, *a);
                b.splice(i..i, bytes.iter().copied().take(64));
            }
            Op::Delete { at: a, len } => {
                let i = at(&b, *a);
                let end = (i + *len as usize % 256).min(b.len());
                b.drain(i..end);
            }
            Op::Repeat { from, to, len } => {
                if !b.is_empty() {
                    let f = *from as usize % b.len();
                    let end = (f + *len as usize % 512).min(b.len());
                    let chunk = b[f..end].to_vec();
                    let t = at(&b, *to);
                    b.splice(t..t, chunk);
                }
            }
            Op::Truncate { at: a } => {
                let i = at(&b, *a);
                b.truncate(i);
            }
        }
        if b.len() > 4 << 20 {
            b.truncate(4 << 20);
        }
    }
    b
}

fn corpus_dir(target: &str) -> PathBuf {
    common::root().join("tests/fuzz").join(target)
}

/// The committed files of a target's corpus, sorted.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("corpus of {target}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Runs the target on one input; a panic first writes the input to the corpus as a
/// regression file, then fails the test.
fn run_one(target: &str, bytes: &[u8], f: &Target) -> bool {
    if std::env::var_os("GLASSBOX_FUZZ_SAVE").is_some() {
        let p = common::root().join(format!("target/fuzz-current-{target}"));
        if let Ok(mut file) = std::fs::File::create(p) {
            let _ = file.write_all(bytes);
        }
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(bytes))) {
        Ok(accepted) => accepted,
        Err(panic) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            let p = corpus_dir(target).join(format!("crash-{:016x}", h.finish()));
            let _ = std::fs::write(&p, bytes);
            eprintln!("{target}: crash saved as {}", p.display());
            std::panic::resume_unwind(panic)
        }
    }
}

fn iterations() -> usize {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

/// The corpus, then `make`-bounded random mutations of it through `build` (which turns a
/// mutation of a seed into the bytes the target reads).
type Build = dyn Fn(&[Vec<u8>], &Mutation) -> Vec<u8> + std::panic::RefUnwindSafe;
/// A target: true when the input was accepted (loaded, decoded, opened), false when refused.
type Target = dyn Fn(&[u8]) -> bool + std::panic::RefUnwindSafe;

fn fuzz(target: &str, build: &Build, f: &Target) {
    let files = corpus(target);
    assert!(!files.is_empty(), "{target}: no corpus");
    let start = Instant::now();
    let accepted = AtomicUsize::new(0);
    for (path, bytes) in &files {
        let ok = run_one(target, bytes, f);
        eprintln!(
            "{target}: {} {}",
            path.file_name().unwrap().to_string_lossy(),
            if ok { "accepted" } else { "refused" }
        );
        if ok {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .filter(|(p, _)| p.file_name().unwrap().to_string_lossy().starts_with("seed"))
        .map(|(_, b)| b.clone())
        .collect();
    assert!(!seeds.is_empty(), "{target}: no seed files (seed-*) to mutate");
    let count = AtomicUsize::new(0);
    bolero::check!()
        .with_type::<Mutation>()
        .with_iterations(iterations())
        .for_each(|m| {
            count.fetch_add(1, Ordering::Relaxed);
            if run_one(target, &build(&seeds, m), f) {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        });
    let n = count.load(Ordering::Relaxed) + files.len();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz {target}: {n} executions ({} corpus files) in {secs:.1} s, {:.0}/s, {} accepted, the rest refused with an error, no crash",
        files.len(),
        n as f64 / secs.max(1e-9),
        accepted.load(Ordering::Relaxed)
    );
}

fn mutate(seeds: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    apply(&seeds[m.seed as usize % seeds.len()], &m.ops)
}

/// The weights loader the app and every command use (content decides the format).
fn load_weights(bytes: &[u8]) -> bool {
    weights::from_bytes(bytes, Path::new("fuzz.pth")).is_ok()
}

#[test]
fn fuzz_safetensors() {
    fuzz("safetensors", &mutate_safetensors, &load_weights);
}

/// Byte mutations, or a header rebuilt with a hostile entry (dtype, shape, offsets).
fn mutate_safetensors(seeds: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    let seed = &seeds[m.seed as usize % seeds.len()];
    if m.seed.is_multiple_of(2) || seed.len() < 8 {
        return apply(seed, &m.ops);
    }
    // Rebuild the header: change one tensor's shape or offsets to values from the ops.
    let n = u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let Some(Ok(mut header)) = seed.get(8..8 + n).map(serde_json::from_slice::<serde_json::Value>) else {
        return apply(seed, &m.ops);
    };
    let data = &seed[(8 + n).min(seed.len())..];
    if let Some(obj) = header.as_object_mut() {
        let keys: Vec<String> = obj.keys().filter(|k| *k != "__metadata__").cloned().collect();
        for (i, op) in m.ops.iter().enumerate() {
            let Some(k) = keys.get(i % keys.len().max(1)) else {
                break;
            };
            let entry = &mut obj[k];
            match op {
                Op::SetU64 { value, .. } => set_at(entry, "shape", 0, value.get()),
                Op::SetU32 { value, .. } => set_at(entry, "data_offsets", 1, value.get() as u64),
                Op::SetByte { value, .. } if entry.is_object() => {
                    const DTYPES: &[&str] = &["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "C64", "X"];
                    entry["dtype"] = serde_json::json!(DTYPES[*value as usize % DTYPES.len()])
                }
                Op::Insert { bytes, .. } if entry.is_object() => {
                    entry["shape"] =
                        serde_json::json!(bytes.iter().map(|b| *b as u64 * 1_000_000_007).collect::<Vec<_>>())
                }
                _ => {}
            }
        }
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out
}

/// Sets `entry[field][index]`, making room where the array is shorter (or not an array).
fn set_at(entry: &mut serde_json::Value, field: &str, index: usize, v: u64) {
    if !entry.is_object() {
        *entry = serde_json::json!({});
    }
    let arr = &mut entry[field];
    if !arr.is_array() {
        *arr = serde_json::json!([]);
    }
    let a = arr.as_array_mut().expect("an array");
    while a.len() <= index {
        a.push(serde_json::json!(0));
    }
    a[index] = serde_json::json!(v);
}

#[test]
fn fuzz_pth_zip() {
    fuzz("pth-zip", &mutate_zip, &load_weights);
}

/// Half the time a byte mutation of the whole archive; else the archive rebuilt around
/// its mutated pickle (so the unpickler is reached behind a valid zip).
fn mutate_zip(seeds: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    use std::io::Read;
    let seed = &seeds[m.seed as usize % seeds.len()];
    if m.seed.is_multiple_of(2) {
        return apply(seed, &m.ops);
    }
    let Ok(mut zip) = zip::ZipArchive::new(std::io::Cursor::new(seed.as_slice())) else {
        return apply(seed, &m.ops);
    };
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().to_owned();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if name.ends_with("data.pkl") {
            data = apply(&data, &m.ops);
        }
        out.start_file(name, opts).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn fuzz_pth_legacy() {
    fuzz("pth-legacy", &mutate, &load_weights);
}

#[test]
fn fuzz_image() {
    fuzz("image", &mutate_image, &decode_and_prepare);
}

/// What a dropped image goes through: decoding under the limits, then the model's view.
fn decode_and_prepare(bytes: &[u8]) -> bool {
    let Ok(img) = preprocess::decode(bytes, Path::new("fuzz.img")) else {
        return false;
    };
    let p = preprocess::Preprocess::efficientnet_lite(224);
    let prepared = p.prepare(&img);
    assert_eq!(prepared.tensor.size(), [1, 3, 224, 224]);
    true
}

/// Byte mutations; for PNG, every chunk's CRC is repaired afterwards so that the decoder
/// looks past the checksums (at the declared size, the chunk data, the filters).
fn mutate_image(seeds: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    let mut b = mutate(seeds, m);
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && m.seed % 2 == 1 {
        let mut i = 8;
        while i + 12 <= b.len() {
            let len = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            let end = i + 8 + len;
            if end + 4 > b.len() {
                break;
            }
            let crc = crc32(&b[i + 4..end]);
            b[end..end + 4].copy_from_slice(&crc.to_be_bytes());
            i = end + 4;
        }
    }
    b
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &x in data {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn fuzz_model() {
    fuzz("model", &mutate_model, &open_model);
}

/// What opening a model file does: the loader, then every check of `Model::from_weights`,
/// then a prediction when the model was accepted.
fn open_model(bytes: &[u8]) -> bool {
    let Ok(w) = weights::from_bytes(bytes, Path::new("fuzz.safetensors")) else {
        return false;
    };
    let Ok(m) = Model::from_weights(w, None, tch::Device::Cpu, None) else {
        return false;
    };
    let s = m.preprocess.size as i64;
    let x = tch::Tensor::zeros([1, m.spec.in_channels, s, s], (tch::Kind::Float, tch::Device::Cpu));
    m.top_k(&m.logits(&x), 3).is_ok()
}

/// The seed model with its metadata replaced by values drawn from the mutation: sizes,
/// means, standard deviations, channel counts, label lists, architecture names.
fn mutate_model(seeds: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    let seed = &seeds[m.seed as usize % seeds.len()];
    if m.seed.is_multiple_of(3) {
        return apply(seed, &m.ops);
    }
    let w = weights::from_bytes(seed, Path::new("seed.safetensors")).expect("seed loads");
    let mut meta: BTreeMap<String, String> = w.metadata.clone();
    let num = |op: &Op| -> f64 {
        match op {
            Op::SetU32 { value, .. } => value.get() as f64,
            Op::SetU64 { value, .. } => value.get() as f64,
            Op::SetByte { value, .. } => *value as f64 - 128.0,
            Op::FlipBit { at, .. } => f64::from_bits(*at as u64 * 0x0101_0101),
            Op::Truncate { .. } => f64::NAN,
            Op::Delete { .. } => 0.0,
            _ => 1.0,
        }
    };
    let mut pre: serde_json::Value = meta
        .get("glassbox.preprocess")
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(serde_json::json!({}));
    for (i, op) in m.ops.iter().enumerate() {
        match i % 6 {
            0 => pre["size"] = serde_json::json!(num(op) as i64),
            1 => pre["mean"] = serde_json::json!(m.ops.iter().map(num).collect::<Vec<_>>()),
            2 => pre["std"] = serde_json::json!(vec![num(op); 1 + i % 3]),
            3 => pre["gray"] = serde_json::json!(num(op) > 0.0),
            4 => {
                let n = (num(op).abs() as usize) % 40;
                meta.insert(
                    "glassbox.labels".into(),
                    serde_json::to_string(&(0..n).map(|k| format!("c{k}")).collect::<Vec<_>>()).unwrap(),
                );
            }
            _ => {
                const ARCHS: &[&str] = &["tiny-cnn", "resnet18", "vgg11", "alexnet", "nope", ""];
                meta.insert(
                    "glassbox.arch".into(),
                    ARCHS[(num(op).abs() as usize) % ARCHS.len()].into(),
                );
            }
        }
    }
    pre["resize"] = match m.ops.len() % 3 {
        0 => serde_json::json!("squash"),
        1 => serde_json::json!({"shorter_side_then_crop": {"resize": m.ops.first().map_or(0.0, num) as i64}}),
        _ => pre["resize"].clone(),
    };
    meta.insert("glassbox.preprocess".into(), pre.to_string());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    weights::save_safetensors(&p, &w.tensors, &meta, weights::StoreAs::F32).unwrap();
    std::fs::read(&p).unwrap()
}
