//! A restricted unpickler for PyTorch state dicts.
//!
//! It interprets the pickle opcodes as data only: no code runs, ever. A global is
//! accepted only when a state dict needs it (`collections.OrderedDict`, the torch
//! tensor rebuild functions and storage types); any other global (`os.system`,
//! `builtins.eval`, ...) is refused by name before anything is built.

use std::collections::HashMap;

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    fn from_storage_name(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }
}

/// A reference to (a view into) a storage record of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: DType,
    /// Offset in elements into the root storage (legacy storage views), usually 0.
    pub elem_offset: i64,
}

/// A tensor as the pickle describes it: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// An allowed global, not yet called.
    Global(Global),
    Storage(StorageRef),
    Tensor(Box<TensorRef>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    StorageType(DType),
    CodecsEncode,
}

fn allowed_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch", s) => Global::StorageType(DType::from_storage_name(s)?),
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    #[error("refused to load: the pickle references the global `{0}`, which a state dict never needs (only collections.OrderedDict, torch tensor rebuilders and torch storage types are allowed); nothing was executed")]
    Forbidden(String),
    #[error("pickle data ends early at byte {0}")]
    Eof(usize),
    #[error("pickle opcode 0x{op:02x} at byte {pos} is not supported in a state dict")]
    Opcode { op: u8, pos: usize },
    #[error("malformed pickle at byte {pos}: {msg}")]
    Malformed { pos: usize, msg: String },
    #[error("refused to load: the pickle builds or copies more than {limit} objects (at byte {pos}); a state dict never does, so the file is broken or hostile")]
    TooLarge { pos: usize, limit: usize },
    #[error("refused to load: the pickle nests containers more than {limit} levels deep (at byte {pos}); a state dict never does, so the file is broken or hostile")]
    TooDeep { pos: usize, limit: usize },
}

type PResult<T> = Result<T, PickleError>;

/// How persistent ids (storages) are resolved: zip files and legacy files differ.
pub trait PersistentLoad {
    fn load(&mut self, pid: Value) -> Result<Value, String>;
}

/// What one unpickling may build: a hostile pickle of a few hundred bytes must not make
/// the reader allocate without bound (DUP / GET copy values, so an object appended to
/// itself doubles with every copy) or nest containers until the stack overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Units of work and memory: one per object built or copied, plus one per 32 bytes of
    /// text it holds.
    pub max_units: usize,
    /// Containers inside containers, at most this deep.
    pub max_depth: usize,
}

/// Nesting a state dict never comes near: a checkpoint dict, a state dict, a tensor
/// rebuild tuple, its size tuple.
pub const MAX_DEPTH: usize = 200;

impl Limits {
    /// A budget proportional to the input: a real state dict builds about one object per
    /// few bytes of pickle, so a million units plus two per byte leaves a wide margin,
    /// capped at 4 Mi units (about 256 MiB at worst).
    pub fn for_input(len: usize) -> Limits {
        Limits {
            max_units: ((1usize << 20) + len.saturating_mul(2)).min(1 << 22),
            max_depth: MAX_DEPTH,
        }
    }
}

/// A value with what it cost to build (units) and how deep its containers nest.
#[derive(Debug, Clone)]
struct Item {
    value: Value,
    units: usize,
    depth: usize,
}

impl Item {
    fn leaf(value: Value) -> Item {
        let units = 1 + payload_bytes(&value) / 32;
        Item { value, units, depth: 0 }
    }
}

/// Bytes of text a leaf value holds (for the budget).
fn payload_bytes(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        Value::Bytes(b) | Value::BigInt(b) => b.len(),
        Value::Storage(s) => s.key.len(),
        Value::Tensor(t) => t.storage.key.len() + 8 * (t.size.len() + t.stride.len()),
        _ => 0,
    }
}

/// At most this many characters of a name from the file go into an error message.
fn short(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

pub struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: HashMap<u32, Item>,
    limits: Limits,
    /// Units spent so far.
    spent: usize,
}

impl<'a> Unpickler<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Unpickler::with_limits(data, Limits::for_input(data.len()))
    }

    pub fn with_limits(data: &'a [u8], limits: Limits) -> Self {
        Unpickler {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            limits,
            spent: 0,
        }
    }

    /// Byte position after the last `STOP`: legacy files hold several pickles in a row.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn malformed<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err(PickleError::Malformed {
            pos: self.pos,
            msg: msg.into(),
        })
    }

    /// Charges `units` to the budget.
    fn charge(&mut self, units: usize) -> PResult<()> {
        self.spent = self.spent.saturating_add(units);
        if self.spent > self.limits.max_units {
            return Err(PickleError::TooLarge {
                pos: self.pos,
                limit: self.limits.max_units,
            });
        }
        Ok(())
    }

    fn push(&mut self, item: Item) -> PResult<()> {
        if item.depth > self.limits.max_depth {
            return Err(PickleError::TooDeep {
                pos: self.pos,
                limit: self.limits.max_depth,
            });
        }
        self.stack.push(item);
        Ok(())
    }

    /// A new leaf value, charged to the budget.
    fn push_leaf(&mut self, v: Value) -> PResult<()> {
        let item = Item::leaf(v);
        self.charge(item.units)?;
        self.push(item)
    }

    /// A new container of `items` (moved, not copied: only the container is charged).
    fn container(&mut self, items: Vec<Item>, make: impl FnOnce(Vec<Value>) -> Result<Value, String>) -> PResult<()> {
        self.charge(1)?;
        let units = 1 + items.iter().map(|i| i.units).sum::<usize>();
        let depth = 1 + items.iter().map(|i| i.depth).max().unwrap_or(0);
        let value = make(items.into_iter().map(|i| i.value).collect()).or_else(|m| self.malformed(m))?;
        self.push(Item { value, units, depth })
    }

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(PickleError::Eof(self.pos))?;
        if end > self.data.len() {
            return Err(PickleError::Eof(self.pos));
        }
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> PResult<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> PResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> PResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// A length from the file: no more than the bytes that remain.
    fn len_u64(&mut self) -> PResult<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| PickleError::Eof(self.pos))
    }
    fn line(&mut self) -> PResult<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(PickleError::Eof(self.data.len()));
        };
        let s = std::str::from_utf8(&rest[..n]).or_else(|_| self.malformed("non-UTF-8 text line"))?;
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> PResult<Value> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(_) => self.malformed("string is not UTF-8"),
        }
    }

    fn pop(&mut self) -> PResult<Item> {
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.malformed("stack underflow"),
        }
    }
    fn top(&mut self) -> PResult<&mut Item> {
        let pos = self.pos;
        self.stack.last_mut().ok_or(PickleError::Malformed {
            pos,
            msg: "empty stack".into(),
        })
    }
    fn pop_mark(&mut self) -> PResult<Vec<Item>> {
        let Some(m) = self.marks.pop() else {
            return self.malformed("no MARK on the stack");
        };
        if m > self.stack.len() {
            return self.malformed("MARK past the stack");
        }
        Ok(self.stack.split_off(m))
    }
    /// Adds `items` to the container on top of the stack (APPEND(S), SETITEM(S)).
    fn extend_top(&mut self, items: Vec<Item>, what: &str) -> PResult<()> {
        let max_depth = self.limits.max_depth;
        let pos = self.pos;
        let top = self.top()?;
        let added = items.iter().map(|i| i.units).sum::<usize>();
        let depth = 1 + items.iter().map(|i| i.depth).max().unwrap_or(0);
        let values: Vec<Value> = items.into_iter().map(|i| i.value).collect();
        match (&mut top.value, what) {
            (Value::List(l), "list") => l.extend(values),
            (Value::Dict(d), "dict") => d.extend(pairs(values).map_err(|msg| PickleError::Malformed { pos, msg })?),
            _ => {
                return Err(PickleError::Malformed {
                    pos,
                    msg: format!("adding items to a value that is not a {what}"),
                })
            }
        }
        top.units += added;
        top.depth = top.depth.max(depth);
        if top.depth > max_depth {
            return Err(PickleError::TooDeep { pos, limit: max_depth });
        }
        Ok(())
    }
    /// A copy of the top of the stack (DUP, PUT), charged in full before it is made.
    fn copy_top(&mut self) -> PResult<Item> {
        let units = self.top()?.units;
        self.charge(units)?;
        Ok(self.top()?.clone())
    }
    /// A copy of a memo entry (GET), charged in full before it is made.
    fn copy_memo(&mut self, i: u32) -> PResult<Item> {
        let Some(units) = self.memo.get(&i).map(|m| m.units) else {
            return self.malformed(format!("memo entry {i} is missing"));
        };
        self.charge(units)?;
        Ok(self.memo[&i].clone())
    }
    fn global(&self, module: &str, name: &str) -> PResult<Value> {
        allowed_global(module, name)
            .map(Value::Global)
            .ok_or_else(|| PickleError::Forbidden(format!("{}.{}", short(module), short(name))))
    }

    /// Runs the pickle up to its `STOP` and returns the object it built.
    pub fn load(&mut self, persistent: &mut dyn PersistentLoad) -> PResult<Value> {
        self.stack.clear();
        self.marks.clear();
        loop {
            let at = self.pos;
            let op = self.u8()?;
            if op == b'.' {
                return Ok(self.pop()?.value);
            }
            let known = self.op_framing(op)?
                || self.op_scalar(op)?
                || self.op_text(op)?
                || self.op_containers(op)?
                || self.op_memo(op)?
                || self.op_objects(op, persistent)?;
            if !known {
                return Err(PickleError::Opcode { op, pos: at });
            }
        }
    }

    /// Protocol and frame headers, marks, POP and DUP. False: not one of these opcodes.
    fn op_framing(&mut self, op: u8) -> PResult<bool> {
        match op {
            0x80 => {
                self.u8()?; // PROTO
            }
            0x95 => {
                self.u64()?; // FRAME
            }
            b'(' => {
                self.charge(1)?;
                self.marks.push(self.stack.len())
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.copy_top()?;
                self.push(v)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, integers and floats. False: not one of these opcodes.
    fn op_scalar(&mut self, op: u8) -> PResult<bool> {
        match op {
            b'N' => self.push_leaf(Value::None)?,
            0x88 => self.push_leaf(Value::Bool(true))?,
            0x89 => self.push_leaf(Value::Bool(false))?,
            b'J' => {
                let v = self.u32()? as i32;
                self.push_leaf(Value::Int(v as i64))?
            }
            b'K' => {
                let v = self.u8()?;
                self.push_leaf(Value::Int(v as i64))?
            }
            b'M' => {
                let v = self.u16()?;
                self.push_leaf(Value::Int(v as i64))?
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    self.u8()? as usize
                } else {
                    self.u32()? as usize
                };
                let b = self.take(n)?;
                if n > 8 {
                    self.push_leaf(Value::BigInt(b.to_vec()))?;
                    return Ok(true);
                }
                let mut buf = if b.last().is_some_and(|x| x & 0x80 != 0) {
                    [0xffu8; 8]
                } else {
                    [0u8; 8]
                };
                buf[..n].copy_from_slice(b);
                self.push_leaf(Value::Int(i64::from_le_bytes(buf)))?
            }
            b'I' | b'L' => {
                let l = self.line()?.trim_end_matches('L');
                let v = match l {
                    "01" => Value::Bool(true),
                    "00" => Value::Bool(false),
                    _ => match l.parse::<i64>() {
                        Ok(v) => Value::Int(v),
                        Err(_) => return self.malformed(format!("bad integer {:?}", short(l))),
                    },
                };
                self.push_leaf(v)?
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                self.push_leaf(Value::Float(v))?
            }
            b'F' => {
                let l = self.line()?;
                match l.parse::<f64>() {
                    Ok(v) => self.push_leaf(Value::Float(v))?,
                    Err(_) => return self.malformed(format!("bad float {:?}", short(l))),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Strings and bytes. False: not one of these opcodes.
    fn op_text(&mut self, op: u8) -> PResult<bool> {
        match op {
            b'X' => {
                let n = self.u32()? as usize;
                let v = self.string(n)?;
                self.push_leaf(v)?
            }
            0x8c => {
                let n = self.u8()? as usize;
                let v = self.string(n)?;
                self.push_leaf(v)?
            }
            0x8d => {
                let n = self.len_u64()?;
                let v = self.string(n)?;
                self.push_leaf(v)?
            }
            b'T' | b'U' => {
                let n = if op == b'T' {
                    self.u32()? as usize
                } else {
                    self.u8()? as usize
                };
                let b = self.take(n)?;
                // Python 2 str: text in practice (keys of legacy files).
                self.push_leaf(Value::Str(String::from_utf8_lossy(b).into_owned()))?
            }
            b'B' | b'C' | 0x8e => {
                let n = match op {
                    b'B' => self.u32()? as usize,
                    b'C' => self.u8()? as usize,
                    _ => self.len_u64()?,
                };
                let b = self.take(n)?;
                self.push_leaf(Value::Bytes(b.to_vec()))?
            }
            b'V' => {
                let l = self.line()?.to_owned();
                self.push_leaf(Value::Str(l))?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts: empty ones, built from a mark, extended. False: not one of these opcodes.
    fn op_containers(&mut self, op: u8) -> PResult<bool> {
        match op {
            b')' => self.push_leaf(Value::Tuple(Vec::new()))?,
            b'}' => self.push_leaf(Value::Dict(Vec::new()))?,
            b']' => self.push_leaf(Value::List(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.container(items, |v| Ok(Value::Tuple(v)))?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return self.malformed("stack underflow in TUPLEn");
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.container(items, |v| Ok(Value::Tuple(v)))?
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.container(items, |v| Ok(Value::List(v)))?
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.container(items, |v| pairs(v).map(Value::Dict))?
            }
            b'a' => {
                let v = self.pop()?;
                self.extend_top(vec![v], "list")?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_top(items, "list")?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.extend_top(vec![k, v], "dict")?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend_top(items, "dict")?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo: PUT and GET. False: not one of these opcodes.
    fn op_memo(&mut self, op: u8) -> PResult<bool> {
        match op {
            b'p' => {
                let l = self.line()?;
                let Ok(i) = l.parse::<u32>() else {
                    return self.malformed("bad PUT index");
                };
                let v = self.copy_top()?;
                self.memo.insert(i, v);
            }
            b'q' | b'r' | 0x94 => {
                let i = match op {
                    b'q' => self.u8()? as u32,
                    b'r' => self.u32()?,
                    _ => self.memo.len() as u32,
                };
                let v = self.copy_top()?;
                self.memo.insert(i, v);
            }
            b'g' | b'h' | b'j' => {
                let i = match op {
                    b'g' => {
                        let l = self.line()?;
                        let Ok(i) = l.parse::<u32>() else {
                            return self.malformed("bad GET index");
                        };
                        i
                    }
                    b'h' => self.u8()? as u32,
                    _ => self.u32()?,
                };
                let v = self.copy_memo(i)?;
                self.push(v)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals (only the allowed ones), calls, BUILD, persistent ids. False: not one of these opcodes.
    fn op_objects(&mut self, op: u8, persistent: &mut dyn PersistentLoad) -> PResult<bool> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                let g = self.global(module, name)?;
                self.push_leaf(g)?
            }
            0x93 => {
                let name = self.pop()?.value;
                let module = self.pop()?.value;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => {
                        let g = self.global(&m, &n)?;
                        self.push_leaf(g)?
                    }
                    _ => return self.malformed("STACK_GLOBAL needs two strings"),
                }
            }
            b'i' => {
                // INST: module and name inline, then instantiation. Never needed.
                let module = self.line()?;
                let name = self.line()?;
                return Err(PickleError::Forbidden(format!("{}.{}", short(module), short(name))));
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let func = self.pop()?;
                let (units, depth) = (1 + args.units, args.depth);
                self.charge(1)?;
                let value = self.call(func.value, args.value)?;
                self.push(Item { value, units, depth })?
            }
            b'b' => {
                // BUILD: state for the object below; a state dict's OrderedDict carries
                // `_metadata` here, which we do not need.
                self.pop()?;
            }
            b'Q' => {
                let pid = self.pop()?.value;
                let v = persistent.load(pid).or_else(|m| self.malformed(m))?;
                self.push_leaf(v)?
            }
            b'P' => {
                let l = self.line()?.to_owned();
                let v = persistent.load(Value::Str(l)).or_else(|m| self.malformed(m))?;
                self.push_leaf(v)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn call(&self, func: Value, args: Value) -> PResult<Value> {
        let Value::Global(g) = func else {
            return self.malformed("REDUCE on a non-callable");
        };
        let Value::Tuple(args) = args else {
            return self.malformed("REDUCE arguments are not a tuple");
        };
        let ints = |v: &Value| -> Option<Vec<i64>> {
            match v {
                Value::Tuple(t) | Value::List(t) => t
                    .iter()
                    .map(|x| match x {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            }
        };
        match g {
            Global::OrderedDict => match args.into_iter().next() {
                None => Ok(Value::Dict(Vec::new())),
                Some(Value::List(items)) => {
                    let mut d = Vec::with_capacity(items.len());
                    for it in items {
                        match it {
                            Value::Tuple(kv) if kv.len() == 2 => {
                                let mut kv = kv.into_iter();
                                d.push((kv.next().expect("a key"), kv.next().expect("a value")))
                            }
                            _ => return self.malformed("OrderedDict item is not a pair"),
                        }
                    }
                    Ok(Value::Dict(d))
                }
                Some(_) => self.malformed("unexpected OrderedDict arguments"),
            },
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                if args.len() < 4 {
                    return self.malformed("tensor rebuild needs storage, offset, size, stride");
                }
                let Value::Storage(storage) = args[0].clone() else {
                    return self.malformed("tensor rebuild without a storage");
                };
                let Value::Int(offset) = args[1] else {
                    return self.malformed("tensor offset is not an integer");
                };
                let (Some(size), Some(stride)) = (ints(&args[2]), ints(&args[3])) else {
                    return self.malformed("tensor size/stride are not integer tuples");
                };
                if size.len() != stride.len() {
                    return self.malformed("tensor size and stride differ in length");
                }
                Ok(Value::Tensor(Box::new(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                })))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.into_iter().next() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => self.malformed("parameter rebuild without a tensor"),
            },
            Global::CodecsEncode => match args.first() {
                Some(Value::Str(s)) => Ok(Value::Bytes(s.chars().map(|c| c as u32 as u8).collect())),
                _ => self.malformed("_codecs.encode needs a string"),
            },
            Global::StorageType(_) => self.malformed("a storage type cannot be called"),
        }
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of dict items".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// The storage type named in a persistent id.
pub fn storage_dtype(v: &Value) -> Option<DType> {
    match v {
        Value::Global(Global::StorageType(d)) => Some(*d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPersistent;
    impl PersistentLoad for NoPersistent {
        fn load(&mut self, _pid: Value) -> Result<Value, String> {
            Err("no storages here".into())
        }
    }

    fn load(bytes: &[u8]) -> PResult<Value> {
        Unpickler::new(bytes).load(&mut NoPersistent)
    }

    #[test]
    fn refuses_os_system_by_name() {
        // pickle.dumps of os.system("echo hi") reduced, protocol 2.
        let p = b"\x80\x02cos\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.";
        let e = load(p).unwrap_err();
        assert!(matches!(e, PickleError::Forbidden(ref g) if g == "os.system"), "{e}");
        assert!(e.to_string().contains("os.system"));
    }

    #[test]
    fn refuses_stack_global_eval() {
        // protocol 4: STACK_GLOBAL builtins.eval
        let p = b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x011\x94\x85\x94R\x94.";
        let e = load(p).unwrap_err();
        assert!(
            matches!(e, PickleError::Forbidden(ref g) if g == "builtins.eval"),
            "{e}"
        );
    }

    #[test]
    fn reads_plain_containers() {
        // pickle.dumps({'a': [1, 2.5, True, None], 'b': (b'xy', -3)}, protocol=2)
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00\x88NeX\x01\x00\x00\x00bq\x03c_codecs\nencode\nq\x04X\x02\x00\x00\x00xyq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08J\xfd\xff\xff\xff\x86q\tu.";
        let v = load(p).unwrap();
        let Value::Dict(d) = v else { panic!("not a dict: {v:?}") };
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].1,
            Value::List(vec![Value::Int(1), Value::Float(2.5), Value::Bool(true), Value::None])
        );
        assert_eq!(d[1].1, Value::Tuple(vec![Value::Bytes(b"xy".to_vec()), Value::Int(-3)]));
    }

    #[test]
    fn truncated_pickle_is_an_error() {
        let p = b"\x80\x02}q\x00(X\x01\x00\x00";
        assert!(load(p).is_err());
    }
}
