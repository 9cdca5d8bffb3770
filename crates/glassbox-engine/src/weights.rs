//! Weight files: safetensors (f32/f16/bf16) and PyTorch `.pth`/`.pt` state dicts
//! (zip and legacy formats, read through the restricted unpickler in [`super::pickle`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use super::error::{Error, Result};
use super::files::{read_file, write_atomic};
use super::pickle::{storage_dtype, DType, PersistentLoad, StorageRef, TensorRef, Unpickler, Value};

/// Named tensors in file order, plus the file's string metadata.
#[derive(Debug)]
pub struct Weights {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: BTreeMap<String, String>,
}

impl Weights {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
    pub fn shape(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|t| t.size())
    }
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(n, _)| n.as_str())
    }
}

/// Storage dtype to tch kind.
fn kind_of(d: DType) -> Kind {
    match d {
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::I16 => Kind::Int16,
        DType::I8 => Kind::Int8,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
    }
}

/// Floating tensors become f32; integer buffers (`num_batches_tracked`) stay as they are.
fn to_f32_if_float(t: Tensor) -> Tensor {
    match t.kind() {
        Kind::Half | Kind::BFloat16 | Kind::Double => t.to_kind(Kind::Float),
        _ => t,
    }
}

/// Reads a weights file, choosing the format from its content (not its extension).
pub fn load(path: &Path) -> Result<Weights> {
    let bytes = read_file(path, max_file_bytes())?;
    from_bytes(&bytes, path)
}

/// What one weights file may make Glassbox allocate beyond its own bytes, in total: the
/// decompressed zip records and the tensors built from strided views. Real state dicts
/// stay well inside (zip records are stored uncompressed; views cover their storages).
pub fn allowance(file_len: usize) -> u64 {
    (file_len as u64).saturating_mul(2).saturating_add(64 << 20)
}

/// The largest weights file Glassbox reads: half the machine's memory (the tensors are
/// built from the file's bytes, so both are in memory at once while loading).
pub fn max_file_bytes() -> u64 {
    (super::device::memory_for_batches(tch::Device::Cpu) as u64).saturating_mul(2)
}

/// At most this many dimensions per tensor (libtorch's own limit is 64; no CNN weight has more than 5).
pub const MAX_DIMS: usize = 16;

pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Weights> {
    if bytes.is_empty() {
        return Err(Error::file(
            path,
            "is empty (0 bytes); expected a .safetensors or .pth weights file",
        ));
    }
    // safetensors: an 8-byte header length, then the JSON header.
    let w = if bytes.get(8) == Some(&b'{') {
        load_safetensors(bytes, path)?
    } else if bytes.starts_with(b"PK\x03\x04") {
        load_torch_zip(bytes, path)?
    } else if bytes[0] == 0x80 {
        load_torch_legacy(bytes, path)?
    } else {
        load_safetensors(bytes, path)?
    };
    Ok(strip_common_prefix(w))
}

/// `model.` / `module.` prefixes (DataParallel, Lightning) are removed when every key has one.
fn strip_common_prefix(mut w: Weights) -> Weights {
    for prefix in ["module.", "model.", "net."] {
        if !w.tensors.is_empty() && w.tensors.iter().all(|(n, _)| n.starts_with(prefix)) {
            for (n, _) in w.tensors.iter_mut() {
                *n = n[prefix.len()..].to_owned();
            }
        }
    }
    w
}

fn load_safetensors(bytes: &[u8], path: &Path) -> Result<Weights> {
    use safetensors::{Dtype, SafeTensors};
    let bad =
        |e: &dyn std::fmt::Display| Error::file(path, format!("not a valid safetensors or PyTorch weights file: {e}"));
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(&e))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(&e))?;
    // Keep the file's order (offsets), as PyTorch users expect.
    let mut names: Vec<(usize, String)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (v.data().as_ptr() as usize, n))
        .collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for (_, name) in names {
        let v = st.tensor(&name).map_err(|e| bad(&e))?;
        let kind = match v.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F64 => Kind::Double,
            Dtype::I64 => Kind::Int64,
            Dtype::I32 => Kind::Int,
            Dtype::U8 => Kind::Uint8,
            Dtype::I8 => Kind::Int8,
            Dtype::BOOL => Kind::Bool,
            other => {
                return Err(Error::file(
                    path,
                    format!("tensor `{name}` has dtype {other:?}, which Glassbox cannot use"),
                ))
            }
        };
        let shape: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(v.data(), &shape, kind)?;
        tensors.push((name, to_f32_if_float(t)));
    }
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok(Weights { tensors, metadata })
}

/// Builds the named tensors of a state dict from the unpickled object and the raw storages.
fn collect_tensors(obj: Value, storages: &HashMap<String, Vec<u8>>, path: &Path) -> Result<Vec<(String, Tensor)>> {
    let dict = find_state_dict(obj).ok_or_else(|| {
        Error::file(
            path,
            "holds no state dict (a mapping of names to tensors); save `model.state_dict()` instead of the whole model",
        )
    })?;
    let mut out = Vec::new();
    let mut budget = allowance(storages.values().map(Vec::len).sum());
    for (k, v) in dict {
        let (Value::Str(name), Value::Tensor(t)) = (k, v) else {
            continue;
        };
        let tensor = materialise(&t, storages, &mut budget)
            .map_err(|m| Error::file(path, format!("tensor `{}`: {m}", short(&name))))?;
        out.push((name, to_f32_if_float(tensor)));
    }
    if out.is_empty() {
        return Err(Error::file(path, "holds no tensors"));
    }
    Ok(out)
}

/// The state dict itself, or one nested in a checkpoint (`state_dict`, `model`, ...).
fn find_state_dict(obj: Value) -> Option<Vec<(Value, Value)>> {
    let Value::Dict(d) = obj else { return None };
    if d.iter().any(|(_, v)| matches!(v, Value::Tensor(_))) {
        return Some(d);
    }
    for key in ["state_dict", "model_state_dict", "model", "net", "weights"] {
        if let Some((_, v)) = d.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == key)) {
            if let Some(inner) = find_state_dict(v.clone()) {
                return Some(inner);
            }
        }
    }
    None
}

/// A name from the file, shortened for an error message.
fn short(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

/// The tensor a pickled strided view describes, checked against its storage with checked
/// arithmetic, its bytes charged to `budget` before anything is allocated.
fn materialise(t: &TensorRef, storages: &HashMap<String, Vec<u8>>, budget: &mut u64) -> Result<Tensor, String> {
    let data = storages
        .get(&t.storage.key)
        .ok_or_else(|| format!("storage record `{}` is missing from the file", short(&t.storage.key)))?;
    let es = t.storage.dtype.size();
    if data.len() % es != 0 {
        return Err(format!(
            "storage `{}` has {} bytes, not a multiple of {es}",
            short(&t.storage.key),
            data.len()
        ));
    }
    if t.size.len() > MAX_DIMS {
        return Err(format!("{} dimensions; at most {MAX_DIMS} are allowed", t.size.len()));
    }
    let numel = (data.len() / es) as i64;
    let overflow = || {
        format!(
            "view (offset {}, size {:?}, stride {:?}) overflows",
            t.offset, t.size, t.stride
        )
    };
    // The furthest element the view touches must lie inside the storage.
    let offset = t.storage.elem_offset.checked_add(t.offset).ok_or_else(overflow)?;
    let mut count: i64 = 1;
    let mut last = offset;
    for (&s, &st) in t.size.iter().zip(&t.stride) {
        if s < 0 || st < 0 {
            return Err("negative size or stride".into());
        }
        count = count.checked_mul(s).ok_or_else(overflow)?;
        if s > 0 {
            last = (s - 1)
                .checked_mul(st)
                .and_then(|d| last.checked_add(d))
                .ok_or_else(overflow)?;
        }
    }
    let kind = kind_of(t.storage.dtype);
    if count == 0 {
        return Tensor::f_zeros(&t.size, (kind, tch::Device::Cpu)).map_err(|e| e.to_string());
    }
    if offset < 0 || last >= numel {
        return Err(format!(
            "view (offset {offset}, size {:?}, stride {:?}) reaches past its storage of {numel} elements",
            t.size, t.stride
        ));
    }
    let bytes = (count as u64).saturating_mul(es as u64);
    if bytes > *budget {
        return Err(format!(
            "view of {count} elements ({bytes} bytes) is larger than the file's storages allow; the file is broken or hostile"
        ));
    }
    *budget -= bytes;
    let flat = Tensor::f_from_data_size(data, &[numel], kind).map_err(|e| e.to_string())?;
    flat.f_as_strided(&t.size, &t.stride, Some(offset))
        .and_then(|v| v.f_contiguous())
        .map_err(|e| e.to_string())
}

/// Zip-format storages: `('storage', StorageType, key, location, numel)`.
struct ZipPersistent;
impl PersistentLoad for ZipPersistent {
    fn load(&mut self, pid: Value) -> Result<Value, String> {
        let Value::Tuple(t) = pid else {
            return Err("persistent id is not a tuple".into());
        };
        match t.as_slice() {
            [Value::Str(kind), ty, Value::Str(key), ..] if kind == "storage" => {
                let dtype = storage_dtype(ty).ok_or("unknown storage type")?;
                Ok(Value::Storage(StorageRef {
                    key: key.clone(),
                    dtype,
                    elem_offset: 0,
                }))
            }
            _ => Err(format!("unsupported persistent id (a tuple of {} items)", t.len())),
        }
    }
}

fn load_torch_zip(bytes: &[u8], path: &Path) -> Result<Weights> {
    let bad = |m: String| Error::file(path, m);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("broken PyTorch zip archive: {e}")))?;
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| {
            if names
                .iter()
                .any(|n| n.ends_with("constants.pkl") || n.contains("/code/"))
            {
                bad(
                    "is a TorchScript archive; Glassbox reads state dicts: save `model.state_dict()` with torch.save"
                        .into(),
                )
            } else {
                bad("zip file without data.pkl: not a PyTorch checkpoint".into())
            }
        })?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_owned();
    if let Ok(mut f) = zip.by_name(&format!("{prefix}byteorder")) {
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        if s.trim() == "big" {
            return Err(bad("stores big-endian tensors, which Glassbox does not read".into()));
        }
    }
    // Records are read with a cap on the bytes they really decompress to, never trusting
    // the size they declare; all of them together stay within the file's allowance.
    let mut budget = allowance(bytes.len());
    let mut read = |name: &str| -> Result<Vec<u8>> {
        let f = zip
            .by_name(name)
            .map_err(|e| bad(format!("record `{}`: {e}", short(name))))?;
        let declared = f.size();
        let mut v = Vec::new();
        f.take(budget.saturating_add(1))
            .read_to_end(&mut v)
            .map_err(|e| bad(format!("record `{}`: {e}", short(name))))?;
        let got = v.len() as u64;
        if got > budget {
            return Err(bad(format!(
                "record `{}` decompresses to more than {budget} bytes, more than a {}-byte weights file can hold; the file is broken or hostile",
                short(name),
                bytes.len()
            )));
        }
        if got != declared {
            return Err(bad(format!(
                "record `{}` declares {declared} bytes but holds {got}: the archive is damaged",
                short(name)
            )));
        }
        budget -= got;
        Ok(v)
    };
    let pickle = read(&pkl)?;
    let obj = Unpickler::new(&pickle)
        .load(&mut ZipPersistent)
        .map_err(|e| bad(e.to_string()))?;
    let mut keys = Vec::new();
    collect_storage_keys(&obj, &mut keys);
    let mut storages = HashMap::new();
    for k in keys {
        if let std::collections::hash_map::Entry::Vacant(e) = storages.entry(k) {
            let data = read(&format!("{prefix}data/{}", e.key()))?;
            e.insert(data);
        }
    }
    let tensors = collect_tensors(obj, &storages, path)?;
    Ok(Weights {
        tensors,
        metadata: BTreeMap::new(),
    })
}

fn collect_storage_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Tensor(t) => out.push(t.storage.key.clone()),
        Value::Dict(d) => d.iter().for_each(|(k, v)| {
            collect_storage_keys(k, out);
            collect_storage_keys(v, out)
        }),
        Value::List(l) | Value::Tuple(l) => l.iter().for_each(|x| collect_storage_keys(x, out)),
        _ => {}
    }
}

/// Legacy storages: `('storage', StorageType, root_key, location, numel, view_metadata)`.
struct LegacyPersistent {
    dtypes: HashMap<String, DType>,
}
impl PersistentLoad for LegacyPersistent {
    fn load(&mut self, pid: Value) -> Result<Value, String> {
        let Value::Tuple(t) = pid else {
            return Err("persistent id is not a tuple".into());
        };
        match t.as_slice() {
            [Value::Str(kind), ty, Value::Str(key), _loc, _size, view] if kind == "storage" => {
                let dtype = storage_dtype(ty).ok_or("unknown storage type")?;
                self.dtypes.insert(key.clone(), dtype);
                let elem_offset = match view {
                    Value::Tuple(v) => match v.as_slice() {
                        [_, Value::Int(off), _] => *off,
                        _ => return Err("bad storage view metadata".into()),
                    },
                    _ => 0,
                };
                Ok(Value::Storage(StorageRef {
                    key: key.clone(),
                    dtype,
                    elem_offset,
                }))
            }
            [Value::Str(kind), ..] if kind == "module" => {
                Err("the file pickles a whole module (source code); save `model.state_dict()` instead".into())
            }
            _ => Err(format!("unsupported persistent id (a tuple of {} items)", t.len())),
        }
    }
}

/// The magic number at the start of legacy (pre-1.6) PyTorch files.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

fn load_torch_legacy(bytes: &[u8], path: &Path) -> Result<Weights> {
    let bad = |m: String| Error::file(path, m);
    let mut pos = 0usize;
    let mut persistent = LegacyPersistent { dtypes: HashMap::new() };
    let next = |pos: &mut usize, p: &mut LegacyPersistent| -> Result<Value> {
        let mut u = Unpickler::new(&bytes[*pos..]);
        let v = u.load(p).map_err(|e| bad(e.to_string()))?;
        *pos += u.position();
        Ok(v)
    };
    let magic = next(&mut pos, &mut persistent)?;
    if magic != Value::BigInt(LEGACY_MAGIC.to_le_bytes()[..10].to_vec()) {
        return Err(bad("not a PyTorch file (bad magic number)".into()));
    }
    let proto = next(&mut pos, &mut persistent)?;
    if proto != Value::Int(1001) {
        return Err(bad(format!(
            "unsupported legacy PyTorch protocol {proto:?} (expected 1001)"
        )));
    }
    let _sys_info = next(&mut pos, &mut persistent)?;
    let obj = next(&mut pos, &mut persistent)?;
    let keys = next(&mut pos, &mut persistent)?;
    let Value::List(keys) = keys else {
        return Err(bad("legacy file without its storage key list".into()));
    };
    let mut storages = HashMap::new();
    for k in keys {
        let Value::Str(k) = k else {
            return Err(bad("storage key is not a string".into()));
        };
        let dtype = *persistent
            .dtypes
            .get(&k)
            .ok_or_else(|| bad(format!("storage `{k}` is never used")))?;
        let head = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| bad(format!("file ends before storage `{k}`")))?;
        let numel = u64::from_le_bytes(head.try_into().expect("8 bytes")) as usize;
        pos += 8;
        let len = numel.checked_mul(dtype.size()).ok_or_else(|| {
            bad(format!(
                "storage `{}` claims {numel} elements, more than any file holds",
                short(&k)
            ))
        })?;
        let data = bytes
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| bad(format!("file ends inside storage `{k}` (truncated download?)")))?;
        pos += len;
        storages.insert(k, data.to_vec());
    }
    let tensors = collect_tensors(obj, &storages, path)?;
    Ok(Weights {
        tensors,
        metadata: BTreeMap::new(),
    })
}

/// How floating tensors are stored in a written safetensors file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAs {
    F32,
    F16,
}

/// Writes safetensors atomically (temporary file in the same folder, then rename).
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
    store: StoreAs,
) -> Result<()> {
    use safetensors::Dtype;
    let mut owned: Vec<(String, Vec<u8>, Vec<usize>, Dtype)> = Vec::new();
    for (name, t) in tensors {
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let (t, dtype) = match (t.kind(), store) {
            (Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16, StoreAs::F16) => {
                (t.to_kind(Kind::Half), Dtype::F16)
            }
            (Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16, StoreAs::F32) => {
                (t.to_kind(Kind::Float), Dtype::F32)
            }
            (Kind::Int64, _) => (t, Dtype::I64),
            (Kind::Int, _) => (t, Dtype::I32),
            (Kind::Uint8, _) => (t, Dtype::U8),
            (k, _) => {
                return Err(Error::invalid(format!(
                    "tensor `{name}` has kind {k:?}, which cannot be saved"
                )))
            }
        };
        let numel = t.numel();
        let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut data, numel)?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        owned.push((name.clone(), data, shape, dtype));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, d, s, dt)| {
            safetensors::tensor::TensorView::new(*dt, s.clone(), d)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::invalid(format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::invalid(e.to_string()))?;
    write_atomic(path, &canonical_header(bytes)?)
}

/// Rewrites a safetensors header with sorted keys, so the same tensors and metadata
/// always give the same bytes (the crate writes metadata in hash-map order).
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| Error::invalid(format!("safetensors header: {e}")))?;
    let mut json = serde_json::to_vec(&header).map_err(|e| Error::invalid(e.to_string()))?;
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_roundtrip_keeps_values_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let b = Tensor::from_slice(&[5i64]);
        let mut meta = BTreeMap::new();
        meta.insert("labels".to_string(), "[\"x\"]".to_string());
        save_safetensors(
            &p,
            &[("z.weight".into(), a.shallow_clone()), ("a.n".into(), b)],
            &meta,
            StoreAs::F16,
        )
        .unwrap();
        let w = load(&p).unwrap();
        assert_eq!(w.names().collect::<Vec<_>>(), ["a.n", "z.weight"]); // file (offset) order
        assert_eq!(w.get("z.weight").unwrap().kind(), Kind::Float);
        assert!(w.get("z.weight").unwrap().equal(&a));
        assert_eq!(w.metadata["labels"], "[\"x\"]");
    }

    #[test]
    fn header_past_end_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.safetensors");
        let mut bytes = 1_000_000u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(&p, &bytes).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.safetensors") && e.contains("not a valid safetensors"),
            "{e}"
        );
    }

    #[test]
    fn empty_file_and_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pth");
        std::fs::write(&p, b"").unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("empty"));
        assert!(load(dir.path()).unwrap_err().to_string().contains("directory"));
    }
}
