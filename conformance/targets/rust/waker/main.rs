//! rust_waker: Rust's `std` as an oracle for the Waker / RawWakerVTable contract.
//!
//! The program performs waker operations on REAL `std::task::Waker` values and
//! reports every call that reaches a vtable we control.  It is driven by
//! `asyncspec.conformance.rustwaker`; it uses std only, and builds with
//!
//!     rustc -O --edition 2021 -o rust_waker main.rs
//!
//! Protocol: one JSON object per line on stdin, one JSON object per line on
//! stdout (flushed after each), in order.  End of input (or "quit") ends the
//! program with status 0.
//!
//!   -> {"op": "new", "slot": 0, "task": 1, "kind": "raw"}
//!   <- {"calls": [], "result": null, "instances": [0,1,0,0,0,0,0,0], "error": null}
//!
//!   calls      the vtable calls made while serving THIS request, in order,
//!              each ["clone"|"wake"|"wake_by_ref"|"drop", task]
//!   result     true/false for will_wake and context, else null
//!   instances  live wakers per task 0..7 (see "Tasks" below)
//!   error      null, or a sentence naming what was wrong with the request;
//!              a refused request changes nothing and makes no call
//!
//! Requests (slots and tasks are 0..7):
//!
//!   new {slot, task, kind: "raw"|"arc"}  a new waker for task into the empty slot
//!   noop {slot}              Waker::noop().clone() into the empty slot
//!   clone {src, dst}         dst = src.clone()          (dst empty)
//!   drop {slot}              drop the waker, emptying the slot
//!   wake {slot}              take the waker out and call wake() (consumes it)
//!   wake_by_ref {slot}       call wake_by_ref()
//!   will_wake {a, b}         result = a.will_wake(&b)   (a == b allowed)
//!   clone_from {dst, src}    dst.clone_from(&src)       (two different full slots)
//!   forget {slot}            std::mem::forget the waker, emptying the slot
//!   context {slot}           cx = Context::from_waker(&w); result = cx.waker().will_wake(&w)
//!   reset {}                 drop every slot's waker (those drops are reported),
//!                            then forget every task's kind and count: a new trace
//!   quit {}                  answer, then exit 0
//!
//! Tasks.  A task's kind is fixed by its first `new` until `reset`:
//!
//! * "raw": `Waker::from_raw(RawWaker::new(&RECORDS[k], &VTABLE))`.  VTABLE is
//!   ONE `static`, so every raw waker carries the same vtable address (building
//!   `&RawWakerVTable::new(..)` at several sites may give several addresses:
//!   rust-lang/rust#121600) and `will_wake` compares only the data pointer.
//!   Its four functions log (call, task) and keep the task's live count:
//!   `new` +1 (no vtable call), clone +1, drop -1, wake -1, wake_by_ref 0.
//! * "arc": `Waker::from(arc.clone())` for an `Arc<ArcTask>`, ArcTask: Wake,
//!   so the vtable is std's own.  Our `Wake::wake` and `Wake::wake_by_ref` log
//!   ("wake", k) and ("wake_by_ref", k); clone and drop happen inside std and
//!   are seen only through the count, `Arc::strong_count - 1` (the program
//!   keeps one Arc of its own per arc task).
//!
//! Measured on rustc 1.95.0 (59807616e 2026-04-14), x86_64-unknown-linux-gnu:
//!
//! * `clone_from` skips the clone when `dst.will_wake(&src)`: two raw wakers
//!   of the same task make no call at all; different tasks make
//!   [clone src-task, drop dst-task], in that order (the clone is made before
//!   the old value is dropped).  Same for arc wakers, seen through the counts.
//! * `will_wake` and `Context::from_waker` make no vtable call; `wake` makes
//!   exactly one call (wake) and no drop; the arc vtable is one address too
//!   (two arc wakers of one task will_wake each other), and two noop wakers
//!   will_wake each other.
//!
//! Nothing here panics on bad input: the JSON reader is a small hand-written
//! one (depth-limited) for this fixed message shape, and every request is
//! checked completely before anything is done.

use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, RawWaker, RawWakerVTable, Wake, Waker};

const NSLOTS: usize = 8;
const NTASKS: usize = 8;
/// Deepest nesting the JSON reader accepts (requests are flat objects).
const MAX_DEPTH: usize = 16;

// ------------------------------------------------------------ the call log

#[derive(Clone, Copy)]
enum Call {
    Clone,
    Wake,
    WakeByRef,
    Drop,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Clone => "clone",
            Call::Wake => "wake",
            Call::WakeByRef => "wake_by_ref",
            Call::Drop => "drop",
        }
    }
}

/// Every vtable call since the last request was answered.
static LOG: Mutex<Vec<(Call, usize)>> = Mutex::new(Vec::new());

fn log(call: Call, task: usize) {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((call, task));
}

fn take_log() -> Vec<(Call, usize)> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

// ------------------------------------------------------- the raw vtable

/// Live raw wakers per task.  Signed: a count below zero is a finding
/// (more drops than clones), not something to hide.
static RAW_LIVE: [AtomicI64; NTASKS] = [const { AtomicI64::new(0) }; NTASKS];

/// What a raw waker's data pointer points at.  Not zero-sized: each task's
/// record must have its own address, or every task would will_wake the others.
struct TaskRecord {
    task: usize,
}

static RECORDS: [TaskRecord; NTASKS] = {
    let mut r = [const { TaskRecord { task: 0 } }; NTASKS];
    let mut i = 0;
    while i < NTASKS {
        r[i] = TaskRecord { task: i };
        i += 1;
    }
    r
};

/// The one vtable of every raw waker (one static: one address).
static VTABLE: RawWakerVTable = RawWakerVTable::new(raw_clone, raw_wake, raw_wake_by_ref, raw_drop);

/// The task a raw waker's data pointer names.
///
/// SAFETY: `data` is one of `&RECORDS[k]`, the only pointers this program
/// ever pairs with VTABLE.
unsafe fn task_of(data: *const ()) -> usize {
    unsafe { (*(data as *const TaskRecord)).task }
}

unsafe fn raw_clone(data: *const ()) -> RawWaker {
    let k = unsafe { task_of(data) };
    log(Call::Clone, k);
    RAW_LIVE[k].fetch_add(1, Ordering::Relaxed);
    RawWaker::new(data, &VTABLE)
}

unsafe fn raw_wake(data: *const ()) {
    let k = unsafe { task_of(data) };
    log(Call::Wake, k);
    RAW_LIVE[k].fetch_sub(1, Ordering::Relaxed); // wake consumes the waker
}

unsafe fn raw_wake_by_ref(data: *const ()) {
    let k = unsafe { task_of(data) };
    log(Call::WakeByRef, k);
}

unsafe fn raw_drop(data: *const ()) {
    let k = unsafe { task_of(data) };
    log(Call::Drop, k);
    RAW_LIVE[k].fetch_sub(1, Ordering::Relaxed);
}

fn raw_waker(task: usize) -> Waker {
    let data = &RECORDS[task] as *const TaskRecord as *const ();
    RAW_LIVE[task].fetch_add(1, Ordering::Relaxed);
    // SAFETY: VTABLE's functions uphold the RawWaker contract for pointers to
    // RECORDS: they are 'static, thread-safe, and clone returns a waker for
    // the same record.
    unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
}

// ---------------------------------------------------------- the arc task

struct ArcTask {
    task: usize,
}

impl Wake for ArcTask {
    fn wake(self: Arc<Self>) {
        log(Call::Wake, self.task);
        // `self` drops here: std's wake hands the waker's reference to us.
    }

    fn wake_by_ref(self: &Arc<Self>) {
        log(Call::WakeByRef, self.task);
    }
}

// -------------------------------------------------------- the interpreter

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Raw,
    Arc,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Arc => "arc",
        }
    }
}

/// What a slot holds, for error messages.
#[derive(Clone, Copy)]
enum Label {
    Task(Kind, usize),
    Noop,
}

impl Label {
    fn describe(self) -> String {
        match self {
            Label::Task(kind, k) => format!("a {} waker of task {k}", kind.name()),
            Label::Noop => "a noop waker".to_string(),
        }
    }
}

struct Interp {
    slots: Vec<Option<(Waker, Label)>>,
    kinds: [Option<Kind>; NTASKS],
    /// The program's own Arc per arc task.
    arcs: Vec<Option<Arc<ArcTask>>>,
}

/// What serving one request gave besides the calls.
struct Answer {
    result: Option<bool>,
    quit: bool,
}

const OPS: &str = "new, noop, clone, drop, wake, wake_by_ref, will_wake, clone_from, forget, context, reset, quit";

impl Interp {
    fn new() -> Interp {
        Interp {
            slots: (0..NSLOTS).map(|_| None).collect(),
            kinds: [None; NTASKS],
            arcs: (0..NTASKS).map(|_| None).collect(),
        }
    }

    fn instances(&self) -> [i64; NTASKS] {
        let mut n = [0i64; NTASKS];
        for (k, count) in n.iter_mut().enumerate() {
            *count = match (&self.kinds[k], &self.arcs[k]) {
                (Some(Kind::Arc), Some(arc)) => Arc::strong_count(arc) as i64 - 1,
                _ => RAW_LIVE[k].load(Ordering::Relaxed),
            };
        }
        n
    }

    fn empty(&self, name: &str, slot: usize) -> Result<(), String> {
        match &self.slots[slot] {
            None => Ok(()),
            Some((_, label)) => Err(format!(
                "{name}: slot {slot} is occupied (by {})",
                label.describe()
            )),
        }
    }

    fn full(&self, name: &str, slot: usize) -> Result<&(Waker, Label), String> {
        self.slots[slot]
            .as_ref()
            .ok_or_else(|| format!("{name}: slot {slot} is empty"))
    }

    fn take(&mut self, name: &str, slot: usize) -> Result<Waker, String> {
        self.full(name, slot)?;
        match self.slots[slot].take() {
            Some((w, _)) => Ok(w),
            None => Err(format!("{name}: slot {slot} is empty")),
        }
    }

    fn handle(&mut self, line: &[u8]) -> Result<Answer, String> {
        let text =
            std::str::from_utf8(line).map_err(|_| "the request is not valid UTF-8".to_string())?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return Err("empty request (expected one JSON object per line)".to_string());
        }
        let value = Parser::parse(text).map_err(|e| format!("bad JSON: {e}"))?;
        let obj = match &value {
            Json::Obj(fields) => fields.as_slice(),
            other => {
                return Err(format!(
                    "a request must be a JSON object, got {}",
                    other.kind()
                ))
            }
        };
        let op = match field(obj, "op")? {
            Json::Str(s) => s.as_str(),
            other => {
                return Err(format!(
                    "field \"op\" must be a string, got {}",
                    other.kind()
                ))
            }
        };
        let none = Answer {
            result: None,
            quit: false,
        };
        match op {
            "new" => {
                only(obj, op, &["slot", "task", "kind"])?;
                let slot = index(obj, "slot", "slots", NSLOTS)?;
                let task = index(obj, "task", "tasks", NTASKS)?;
                let kind = match field(obj, "kind")? {
                    Json::Str(s) if s == "raw" => Kind::Raw,
                    Json::Str(s) if s == "arc" => Kind::Arc,
                    Json::Str(s) => {
                        return Err(format!(
                            "new: unknown kind {} (known: \"raw\", \"arc\")",
                            quote(s)
                        ))
                    }
                    other => {
                        return Err(format!(
                            "field \"kind\" must be a string, got {}",
                            other.kind()
                        ))
                    }
                };
                self.empty(op, slot)?;
                if let Some(had) = self.kinds[task] {
                    if had != kind {
                        return Err(format!(
                            "new: task {task} is a {} task until reset, not {}",
                            had.name(),
                            kind.name()
                        ));
                    }
                }
                self.kinds[task] = Some(kind);
                let waker = match kind {
                    Kind::Raw => raw_waker(task),
                    Kind::Arc => {
                        let arc = self.arcs[task].get_or_insert_with(|| Arc::new(ArcTask { task }));
                        Waker::from(arc.clone())
                    }
                };
                self.slots[slot] = Some((waker, Label::Task(kind, task)));
                Ok(none)
            }
            "noop" => {
                only(obj, op, &["slot"])?;
                let slot = index(obj, "slot", "slots", NSLOTS)?;
                self.empty(op, slot)?;
                self.slots[slot] = Some((Waker::noop().clone(), Label::Noop));
                Ok(none)
            }
            "clone" => {
                only(obj, op, &["src", "dst"])?;
                let src = index(obj, "src", "slots", NSLOTS)?;
                let dst = index(obj, "dst", "slots", NSLOTS)?;
                let (waker, label) = self.full(op, src)?;
                self.empty(op, dst)?;
                let copy = (waker.clone(), *label);
                self.slots[dst] = Some(copy);
                Ok(none)
            }
            "drop" => {
                only(obj, op, &["slot"])?;
                let slot = index(obj, "slot", "slots", NSLOTS)?;
                drop(self.take(op, slot)?);
                Ok(none)
            }
            "wake" => {
                only(obj, op, &["slot"])?;
                let slot = index(obj, "slot", "slots", NSLOTS)?;
                self.take(op, slot)?.wake();
                Ok(none)
            }
            "wake_by_ref" => {
                only(obj, op, &["slot"])?;
                let slot = index(obj, "slot", "slots", NSLOTS)?;
                self.full(op, slot)?.0.wake_by_ref();
                Ok(none)
            }
            "will_wake" => {
                only(obj, op, &["a", "b"])?;
                let a = index(obj, "a", "slots", NSLOTS)?;
                let b = index(obj, "b", "slots", NSLOTS)?;
                let (wa, _) = self.full(op, a)?;
                let (wb, _) = self.full(op, b)?;
                Ok(Answer {
                    result: Some(wa.will_wake(wb)),
                    quit: false,
                })
            }
            "clone_from" => {
                only(obj, op, &["dst", "src"])?;
                let dst = index(obj, "dst", "slots", NSLOTS)?;
                let src = index(obj, "src", "slots", NSLOTS)?;
                if dst == src {
                    return Err(format!(
                        "clone_from: dst and src are both slot {dst} (Rust's borrow rules forbid w.clone_from(&w))"
                    ));
                }
                self.full(op, dst)?;
                self.full(op, src)?;
                let (d, s) = if dst < src {
                    let (lo, hi) = self.slots.split_at_mut(src);
                    (&mut lo[dst], &hi[0])
                } else {
                    let (lo, hi) = self.slots.split_at_mut(dst);
                    (&mut hi[0], &lo[src])
                };
                if let (Some((dw, dl)), Some((sw, sl))) = (d.as_mut(), s.as_ref()) {
                    dw.clone_from(sw);
                    *dl = *sl;
                }
                Ok(none)
            }
            "forget" => {
                only(obj, op, &["slot"])?;
                let slot = index(obj, "slot", "slots", NSLOTS)?;
                std::mem::forget(self.take(op, slot)?);
                Ok(none)
            }
            "context" => {
                only(obj, op, &["slot"])?;
                let slot = index(obj, "slot", "slots", NSLOTS)?;
                let (w, _) = self.full(op, slot)?;
                let cx = Context::from_waker(w);
                Ok(Answer {
                    result: Some(cx.waker().will_wake(w)),
                    quit: false,
                })
            }
            "reset" => {
                only(obj, op, &[])?;
                for slot in self.slots.iter_mut() {
                    drop(slot.take()); // logged: these drops are this request's calls
                }
                for arc in self.arcs.iter_mut() {
                    *arc = None;
                }
                self.kinds = [None; NTASKS];
                for count in RAW_LIVE.iter() {
                    count.store(0, Ordering::Relaxed);
                }
                Ok(none)
            }
            "quit" => {
                only(obj, op, &[])?;
                Ok(Answer {
                    result: None,
                    quit: true,
                })
            }
            _ => Err(format!("unknown op {} (known: {OPS})", quote(op))),
        }
    }
}

/// The request's field `name`.
fn field<'a>(obj: &'a [(String, Json)], name: &str) -> Result<&'a Json, String> {
    obj.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("missing field \"{name}\""))
}

/// Refuse fields the op does not take (a misspelt field is a mistake, not a default).
fn only(obj: &[(String, Json)], op: &str, allowed: &[&str]) -> Result<(), String> {
    for (k, _) in obj {
        if k != "op" && !allowed.contains(&k.as_str()) {
            let takes = if allowed.is_empty() {
                "no fields".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(format!(
                "{op}: unknown field {} ({op} takes {takes})",
                quote(k)
            ));
        }
    }
    Ok(())
}

/// A field that must be an integer in 0..bound (`what`: "slots" or "tasks", for the message).
fn index(obj: &[(String, Json)], name: &str, what: &str, bound: usize) -> Result<usize, String> {
    match field(obj, name)? {
        Json::Num(text) => {
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "field \"{name}\" must be a non-negative integer, got {text}"
                ));
            }
            match text.parse::<usize>() {
                Ok(n) if n < bound => Ok(n),
                _ => Err(format!(
                    "field \"{name}\" is {text}, but {what} are 0 to {}",
                    bound - 1
                )),
            }
        }
        other => Err(format!(
            "field \"{name}\" must be an integer, got {}",
            other.kind()
        )),
    }
}

// --------------------------------------------------------------- JSON in

// Values a request never uses (booleans, arrays) are still read whole, so a
// request holding one gets a precise "must be an integer, got an array".
#[allow(dead_code)]
enum Json {
    Null,
    Bool(bool),
    /// The number's text, as written (checked against JSON's grammar).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    /// Fields in order; duplicates are refused while parsing.
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Num(_) => "a number",
            Json::Str(_) => "a string",
            Json::Arr(_) => "an array",
            Json::Obj(_) => "an object",
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn parse(text: &'a str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected text after the value at byte {}", p.i));
        }
        Ok(v)
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{}'", b as char)))
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.peek() {
            None => format!(
                "expected {wanted} at byte {}, got the end of the line",
                self.i
            ),
            Some(b) if b.is_ascii_graphic() => {
                format!("expected {wanted} at byte {}, got '{}'", self.i, b as char)
            }
            Some(b) => format!("expected {wanted} at byte {}, got byte 0x{b:02x}", self.i),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut fields: Vec<(String, Json)> = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.unexpected("a field name"));
                    }
                    let key = self.string()?;
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(format!("field {} appears twice", quote(&key)));
                    }
                    self.ws();
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    fields.push((key, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(self.unexpected("',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(self.unexpected("',' or ']'")),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("a value")),
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(self.unexpected(&format!("'{w}'")))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.unexpected("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.unexpected("a digit"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.unexpected("a digit"));
            }
        }
        // The slice is ASCII, so this cannot fail; no unwrap all the same.
        Ok(Json::Num(
            String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
        ))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.unexpected("a hex digit")),
            };
            n = n * 16 + d as u32;
            self.i += 1;
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".to_string()),
                Some(b'"') => {
                    self.i += 1;
                    // The input is valid UTF-8 and escapes add valid UTF-8.
                    return String::from_utf8(out)
                        .map_err(|_| "a string is not valid UTF-8".to_string());
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.s[self.i..].starts_with(b"\\u") {
                                    return Err(format!("unpaired surrogate \\u{hi:04x}"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(format!("unpaired surrogate \\u{hi:04x}"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            let c = char::from_u32(code)
                                .ok_or_else(|| format!("unpaired surrogate \\u{code:04x}"))?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => return Err(self.unexpected("an escape character")),
                    };
                    self.i += 1;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(b) if b < 0x20 => {
                    return Err(
                        self.unexpected("a string character (control characters must be escaped)")
                    )
                }
                Some(b) => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

// -------------------------------------------------------------- JSON out

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn response(
    calls: &[(Call, usize)],
    result: Option<bool>,
    instances: &[i64],
    error: Option<&str>,
) -> String {
    let calls: Vec<String> = calls
        .iter()
        .map(|(c, k)| format!("[\"{}\",{k}]", c.name()))
        .collect();
    let instances: Vec<String> = instances.iter().map(|n| n.to_string()).collect();
    format!(
        "{{\"calls\":[{}],\"result\":{},\"instances\":[{}],\"error\":{}}}\n",
        calls.join(","),
        match result {
            None => "null",
            Some(true) => "true",
            Some(false) => "false",
        },
        instances.join(","),
        match error {
            None => "null".to_string(),
            Some(e) => quote(e),
        }
    )
}

fn main() {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut interp = Interp::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break, // end of input: a clean exit
            Ok(_) => {}
            Err(e) => {
                eprintln!("rust_waker: reading stdin: {e}");
                std::process::exit(2);
            }
        }
        let answer = interp.handle(&line);
        let calls = take_log();
        let instances = interp.instances();
        let (text, quit) = match &answer {
            Ok(a) => (response(&calls, a.result, &instances, None), a.quit),
            Err(e) => (response(&calls, None, &instances, Some(e)), false),
        };
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The driver is gone: nobody to answer.
            std::process::exit(1);
        }
        if quit {
            break;
        }
    }
}
